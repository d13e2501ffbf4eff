"""simgrad's files (checkpoints, surrogates): output paths checked before a run, corrupted
or foreign files refused with `sg.CheckpointError` naming the file, nothing allocated on a
header's word, and writes that a crash cannot half-finish."""

import hashlib
import io
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import simgrad as sg
from simgrad import surrogate
from simgrad._src import runs


def loss(theta, key):
    return (sg.random.normal(key, theta, 1.0) - 2.0) ** 2


RUN = dict(n_samples=8, optimizer=optax.adam(0.05), progress=False)


@pytest.fixture(scope="module")
def small():
    xs = jnp.linspace(-1.0, 1.0, 64)
    return surrogate.fit(xs, xs**2, key=jax.random.key(0), steps=3, width=4, progress=False)


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "run.eqx"
    sg.optimize(loss, 0.0, jax.random.key(0), steps=3, checkpoint=path, **RUN)
    return path


def rewrite(path, header=lambda h: None, payload=lambda p: p):
    """Edit a file's header or leaves and give it a *valid* checksum: a crafted file."""
    line, _, leaves = path.read_bytes().partition(b"\n")
    head = json.loads(line)
    leaves = payload(leaves)
    header(head)
    head |= {"bytes": len(leaves), "sha256": hashlib.sha256(leaves).hexdigest()}
    path.write_bytes(json.dumps(head).encode() + b"\n" + leaves)


def flip_last_byte(path):
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


# -- paths are checked before a run starts -----------------------------------------------


@pytest.mark.parametrize(
    "make, error, words",
    [
        (lambda tmp: tmp, ValueError, "is a folder: give a file in it"),
        (lambda tmp: "", ValueError, "is a folder"),
        (lambda tmp: tmp / "no" / "such" / "run.eqx", ValueError, "does not exist"),
        (
            lambda tmp: (tmp / "f").write_text("x") and tmp / "f" / "run.eqx",
            ValueError,
            "not a folder",
        ),  # fmt: skip
        (lambda tmp: 7, TypeError, "must be a file path"),
    ],
)
def test_output_paths_are_checked_with_a_message_each(make, error, words, tmp_path):
    with pytest.raises(error, match=words):
        runs.check_output_path(make(tmp_path), "--html")
    assert runs.check_output_path(tmp_path / "report.html", "--html") == tmp_path / "report.html"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_folder_is_refused(tmp_path):
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(ValueError, match="no permission"):
            runs.check_output_path(tmp_path / "run.eqx", "checkpoint")
    finally:
        tmp_path.chmod(0o700)


def test_surrogate_fit_and_save_check_their_paths_first(small, tmp_path):
    with pytest.raises(ValueError, match="is a folder"):
        surrogate.save(tmp_path, small)
    with pytest.raises(ValueError, match="does not exist"):
        surrogate.fit(jnp.ones(4), jnp.ones(4), key=jax.random.key(0), progress=False,
                      checkpoint=tmp_path / "missing" / "fit.eqx")  # fmt: skip


# -- corrupted, truncated and foreign files ---------------------------------------------

CORRUPTIONS = {
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[:-7]), "is corrupted"),
    "a flipped byte": (flip_last_byte, "is corrupted"),
    "empty": (lambda p: p.write_bytes(b""), "header line is missing or unreadable"),
    "not JSON": (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n..."), "missing or unreadable"),
    "a JSON list": (lambda p: p.write_bytes(b"[1, 2]\n"), "missing or unreadable"),
    "another format": (lambda p: rewrite(p, header=lambda h: h.update(format=99)), "format 99"),
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_a_corrupted_checkpoint_is_refused_naming_the_file(name, checkpoint):
    corrupt, words = CORRUPTIONS[name]
    corrupt(checkpoint)
    with pytest.raises(sg.CheckpointError, match=words) as info:
        sg.optimize(loss, 0.0, jax.random.key(0), steps=5, checkpoint=checkpoint, resume=True,
                    **RUN)  # fmt: skip
    assert str(checkpoint) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_a_checkpoint_without_its_run_is_refused(checkpoint):
    rewrite(checkpoint, header=lambda h: h.pop("run"))
    with pytest.raises(sg.CheckpointError, match="lacks the run"):
        sg.optimize(loss, 0.0, jax.random.key(0), steps=5, checkpoint=checkpoint, resume=True,
                    **RUN)  # fmt: skip


def test_a_surrogate_file_is_not_a_checkpoint_and_back(checkpoint, small, tmp_path):
    surrogate.save(tmp_path / "s.eqx", small)
    with pytest.raises(sg.CheckpointError, match="not a simgrad optimize checkpoint"):
        sg.optimize(loss, 0.0, jax.random.key(0), steps=5, checkpoint=tmp_path / "s.eqx",
                    resume=True, **RUN)  # fmt: skip
    with pytest.raises(sg.CheckpointError, match="not a simgrad surrogate"):
        surrogate.load(checkpoint)


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_a_corrupted_surrogate_is_refused_naming_the_file(name, small, tmp_path):
    path = tmp_path / "s.eqx"
    surrogate.save(path, small)
    corrupt, words = CORRUPTIONS[name]
    corrupt(path)
    with pytest.raises(sg.CheckpointError, match=words) as info:
        surrogate.load(path)
    assert str(path) in str(info.value)


def test_a_missing_surrogate_file_says_so(tmp_path):
    with pytest.raises(sg.CheckpointError, match="cannot be read"):
        surrogate.load(tmp_path / "nothing.eqx")


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda c: c.update(width=16000), "header describes"),  # 1 GB claimed by a tiny file
        (lambda c: c.update(depth=10**9), "cannot fit"),
        (lambda c: c.update(width=-3), "does not describe a surrogate"),
        (lambda c: c.update(dtype="object"), "does not describe a surrogate"),
        (lambda c: c.pop("width"), "does not describe a surrogate"),
    ],
)
def test_a_crafted_surrogate_header_is_refused_before_allocating(edit, words, small, tmp_path):
    path = tmp_path / "s.eqx"
    surrogate.save(path, small)
    rewrite(path, header=lambda h: edit(h["config"]))
    with pytest.raises(sg.CheckpointError, match=words):
        surrogate.load(path)


def test_a_crafted_array_record_is_refused_before_allocating(small, tmp_path):
    path = tmp_path / "s.eqx"
    surrogate.save(path, small)

    def huge_first_array(leaves):  # a valid .npy header claiming 10^10 floats (80 GB)
        f = io.BytesIO(leaves)
        assert np.lib.format.read_magic(f) == (1, 0)
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        rest = leaves[f.tell() + int(np.prod(shape)) * dtype.itemsize :]
        out = io.BytesIO()
        header = {"descr": dtype.str, "fortran_order": False, "shape": (10**10,)}
        np.lib.format.write_array_header_1_0(out, header)
        return out.getvalue() + rest

    rewrite(path, payload=huge_first_array)
    with pytest.raises(sg.CheckpointError, match="does not hold the arrays"):
        surrogate.load(path)


def test_a_surrogate_of_the_old_format_is_refused(small, tmp_path):
    path = tmp_path / "old.eqx"
    with open(path, "wb") as f:  # what save wrote before: a bare config line, then leaves
        f.write((json.dumps(small.config) + "\n").encode())
        import equinox as eqx

        eqx.tree_serialise_leaves(f, small)
    with pytest.raises(sg.CheckpointError, match="not a simgrad surrogate file"):
        surrogate.load(path)


# -- writes survive a crash at any moment ------------------------------------------------


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs, no cleanup handler catches it."""


def die(*args, **kwargs):
    raise Killed


@pytest.mark.parametrize("when", ["while serialising", "before the rename"])
def test_surrogate_save_killed_mid_write_leaves_the_previous_file(
    when, small, tmp_path, monkeypatch
):
    path = tmp_path / "s.eqx"
    surrogate.save(path, small)
    before = path.read_bytes()
    other = jax.tree.map(lambda x: x + 1 if isinstance(x, jax.Array) else x, small)
    with monkeypatch.context() as m:
        if when == "while serialising":
            m.setattr(runs.eqx, "tree_serialise_leaves", die)
        else:  # the new file is fully written to path.tmp; the kill comes before os.replace
            m.setattr(runs.os, "replace", die)
        with pytest.raises(Killed):
            surrogate.save(path, other)
    assert path.read_bytes() == before
    x = jnp.linspace(-1.0, 1.0, 5)
    np.testing.assert_array_equal(jax.vmap(surrogate.load(path))(x), jax.vmap(small)(x))
    surrogate.save(path, other)  # a leftover .tmp does not get in the way
    np.testing.assert_array_equal(jax.vmap(surrogate.load(path))(x), jax.vmap(other)(x))


def test_optimize_killed_while_checkpointing_resumes_from_the_previous_checkpoint(
    tmp_path, monkeypatch
):
    key, path = jax.random.key(3), tmp_path / "run.eqx"
    whole = sg.optimize(loss, 0.0, key, steps=8, **RUN)
    writes = []

    def die_on_second_write(*args):
        writes.append(args)
        if len(writes) == 2:
            raise Killed

    with monkeypatch.context() as m:
        m.setattr(runs.os, "fsync", die_on_second_write)
        with pytest.raises(Killed):
            sg.optimize(loss, 0.0, key, steps=8, checkpoint=path, checkpoint_every=2, **RUN)
    header = json.loads(path.read_bytes().partition(b"\n")[0])
    assert header["step"] == 2  # the first checkpoint, intact
    resumed = sg.optimize(loss, 0.0, key, steps=8, checkpoint=path, resume=True, **RUN)
    for a, b in zip(jax.tree.leaves(resumed.history), jax.tree.leaves(whole.history), strict=True):
        np.testing.assert_array_equal(a, b)
