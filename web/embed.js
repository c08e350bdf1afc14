// edgecount embed script: count a page view without writing code.
//
//   <script src="https://count.example.com/embed.js?v=1" data-namespace="my-site" async></script>
//   This page: <span data-edgecount="value"></span> views
//
// It counts the page once per view (a keepalive POST /hit, so leaving the page does not cancel
// it) and again on every route change of a single-page app (history.pushState/replaceState and
// back/forward, when the path changes), then writes the answer into every element with
// data-edgecount="value", "today" or "uniques". The counter is data-namespace / data-key,
// defaulting to :HOST: / :PATH: (the server names it after the page, sent as ?page=). With
// data-respect-dnt, a visitor whose browser sends Do-Not-Track or Global Privacy Control is not
// counted (the numbers are still shown). No dependencies, no cookies of its own.
(() => {
  const script = document.currentScript;
  if (!script) return;
  const api = new URL(script.src).origin;
  const data = script.dataset;
  const path = (name) => encodeURIComponent(name);
  const counter = `${path(data.namespace || ":HOST:")}/${path(data.key || ":PATH:")}`;
  const optOut =
    "respectDnt" in data &&
    (navigator.doNotTrack === "1" || window.doNotTrack === "1" || navigator.globalPrivacyControl === true);
  const fields = { value: "value", today: "today", uniques: "uniques_today" };

  const show = (answer) => {
    for (const element of document.querySelectorAll("[data-edgecount]")) {
      const number = answer[fields[element.dataset.edgecount]];
      if (typeof number === "number") element.textContent = number.toLocaleString();
    }
  };

  let counted = null; // the path of the last view counted
  let latest = 0; // the last view's number: an older view's late answer must not show
  const count = () => {
    if (location.pathname === counted) return;
    counted = location.pathname;
    const view = ++latest;
    // The page without its query or fragment: those may carry things that are nobody's business.
    const page = path(location.origin + location.pathname);
    const request = optOut
      ? fetch(`${api}/get/${counter}?page=${page}`)
      : fetch(`${api}/hit/${counter}?page=${page}`, { method: "POST", keepalive: true });
    request
      .then((response) => response.json())
      .then((answer) => view === latest && show(answer))
      .catch(() => {}); // a counter must never break the page
  };

  for (const method of ["pushState", "replaceState"]) {
    const original = history[method];
    history[method] = function (...args) {
      const result = original.apply(this, args);
      count();
      return result;
    };
  }
  addEventListener("popstate", count);

  // A prerendered page is not a view until the visitor actually opens it.
  if (document.prerendering) {
    document.addEventListener("prerenderingchange", count, { once: true });
  } else {
    count();
  }
})();
