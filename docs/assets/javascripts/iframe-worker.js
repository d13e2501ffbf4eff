// The site's search runs in a Web Worker, and a browser starts no worker from a page opened
// from disk (file://). There this stands in for Worker: the worker's script runs in a
// hidden iframe, whose window plays the worker's global scope. mkdocs-material's offline
// plugin would load such a shim from the network; this one ships with the site
// (mkdocs.yml, extra.polyfills).
(() => {
  if (location.protocol !== "file:") return;

  // Load scripts one after the other into a window (a worker's importScripts, awaited).
  const load = (scope, urls) =>
    urls.reduce(
      (done, url) =>
        done.then(
          () =>
            new Promise((resolve, reject) => {
              const script = scope.document.createElement("script");
              script.src = url;
              script.onload = resolve;
              script.onerror = reject;
              scope.document.body.appendChild(script);
            }),
        ),
      Promise.resolve(),
    );

  class IFrameWorker extends EventTarget {
    constructor(url) {
      super();
      this.iframe = document.createElement("iframe");
      this.iframe.hidden = true;
      document.body.appendChild(this.iframe);
      const scope = this.iframe.contentWindow;
      // What the worker posts reaches the page as a message event, later, as from a worker.
      scope.postMessage = (data) =>
        setTimeout(() => {
          const event = new MessageEvent("message", { data });
          this.dispatchEvent(event);
          if (this.onmessage) this.onmessage(event);
        });
      scope.importScripts = (...urls) => load(scope, urls);
      this.ready = load(scope, [new URL(url, location.href).href]);
      this.ready.catch(() => {
        const event = new ErrorEvent("error", { message: `could not load ${url}` });
        this.dispatchEvent(event);
        if (this.onerror) this.onerror(event);
      });
    }

    postMessage(data) {
      this.ready.then(() => {
        const scope = this.iframe.contentWindow;
        scope.dispatchEvent(new scope.MessageEvent("message", { data }));
      });
    }

    terminate() {
      this.iframe.remove();
    }
  }

  window.Worker = IFrameWorker;
})();
