"""Random expression programs, run the same way on JAX, `Dual` and `Tape`.

A program is a list of instructions over registers; the first registers are the inputs,
each instruction appends one. Every op is total on the reals (``log`` of ``x² + 1``,
``tan`` of ``sin x``, ...), so a random program stays finite except through growth, which
the tests reject with `hypothesis.assume`.
"""

from hypothesis import strategies as st

UNARY = ["neg", "sin", "cos", "tan", "exp", "log", "sqrt", "tanh", "abs", "square", "cube",
         "rsqrt", "rpow", "addc", "mulc"]  # fmt: skip
BINARY = ["add", "sub", "mul", "div", "pow", "min", "max", "where"]


def apply(op, args, c, lib):
    """One instruction; ``lib`` is ``numpy`` (for Dual and Var) or ``jax.numpy``."""
    x, y = args
    match op:
        case "neg":
            return -x
        case "sin":
            return lib.sin(x)
        case "cos":
            return lib.cos(x)
        case "tan":
            return lib.tan(lib.sin(x))
        case "exp":
            return lib.exp(lib.sin(x))
        case "log":
            return lib.log(x * x + 1.0)
        case "sqrt":
            return lib.sqrt(x * x + 0.5)
        case "tanh":
            return lib.tanh(x)
        case "abs":
            return lib.abs(x)
        case "square":
            return x**2
        case "cube":
            return x**3
        case "rsqrt":
            return (x * x + 1.0) ** -0.5
        case "rpow":
            return 2.0 ** lib.sin(x)
        case "addc":
            return x + c
        case "mulc":
            return c * x
        case "add":
            return x + y
        case "sub":
            return x - y
        case "mul":
            return x * y
        case "div":
            return x / (y * y + 1.0)
        case "pow":
            return (x * x + 1.0) ** lib.tanh(y)
        case "min":
            return lib.minimum(x, y)
        case "max":
            return lib.maximum(x, y)
        case "where":
            return lib.where(x > y, x * y, y - c)
    raise AssertionError(op)


@st.composite
def programs(draw, max_inputs=3, max_len=8):
    """``(n_inputs, instructions)``; an instruction is ``(op, i, j, c)``."""
    n = draw(st.integers(1, max_inputs))
    length = draw(st.integers(1, max_len))
    code = []
    for k in range(length):
        op = draw(st.sampled_from(UNARY + BINARY))
        i = draw(st.integers(0, n + k - 1))
        j = draw(st.integers(0, n + k - 1))
        c = draw(st.floats(-2.0, 2.0, allow_nan=False))
        code.append((op, i, j, c))
    return n, code


def run(program, xs, lib):
    """Run ``program`` on inputs ``xs``; the output is the sum of the last two registers."""
    _, code = program
    regs = list(xs)
    for op, i, j, c in code:
        regs.append(apply(op, (regs[i], regs[j]), c, lib))
    return regs[-1] + regs[-2] if len(regs) > 1 else regs[-1]


inputs = st.lists(st.floats(-2.0, 2.0, allow_nan=False), min_size=3, max_size=3)
