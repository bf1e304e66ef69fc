// The gate console's service worker (a module; scope /gate/): it keeps the console's shell
// so the page loads with the network gone. index.html is fetched from the network first
// (it is no-cache and names the current hashed assets) and from the cache when that fails;
// the hashed assets never change, so they are served from the cache first. The API (/v1/)
// is never touched: decisions offline come from the signed bundle in IndexedDB.
const CACHE = "suishen-gate-shell-v1";
const SHELL = "/gate/";
// Every hashed asset the console's index names (its own files, common/gate-*, the camera
// decoder), not the other sites' large vendored bundles.
const WANTED = /^\/gate\/assets\/(?:js|css|i18n|common\/gate-|vendor\/jsqr-)/;
// The served names (`main.3f2a9c1d5e.js`), not the import map's keys (`main.js`).
const HASHED = /\.[0-9a-f]{10}\.[a-z0-9]+$/;

async function precache() {
  const cache = await caches.open(CACHE);
  const page = await fetch(SHELL, { cache: "no-cache" });
  if (!page.ok) return;
  const html = await page.clone().text();
  const urls = new Set([...html.matchAll(/\/gate\/assets\/[^"'\s<>]+/g)].map((m) => m[0]).filter((u) => WANTED.test(u) && HASHED.test(u)));
  await cache.put(SHELL, page);
  await Promise.all([...urls].map(async (u) => { if (!(await cache.match(u))) await cache.add(u); }));
  // Drop hashed assets the current index no longer names (an older release's).
  for (const request of await cache.keys()) {
    const path = new URL(request.url).pathname;
    if (path !== SHELL && !urls.has(path)) await cache.delete(request);
  }
}

self.addEventListener("install", (event) => { event.waitUntil(precache().then(() => self.skipWaiting())); });
self.addEventListener("activate", (event) => { event.waitUntil(self.clients.claim()); });
self.addEventListener("message", (event) => { if (event.data === "refresh") event.waitUntil(precache()); });

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) return;
  if (request.mode === "navigate" && (url.pathname === SHELL || url.pathname === "/gate")) {
    event.respondWith(fetch(request).then((answer) => {
      if (answer.ok) { const copy = answer.clone(); caches.open(CACHE).then((c) => c.put(SHELL, copy)); }
      return answer;
    }).catch(async () => (await caches.match(SHELL)) || Response.error()));
  } else if (url.pathname.startsWith("/gate/assets/")) {
    event.respondWith(caches.match(request).then((hit) => hit || fetch(request).then((answer) => {
      if (answer.ok && WANTED.test(url.pathname)) { const copy = answer.clone(); caches.open(CACHE).then((c) => c.put(request, copy)); }
      return answer;
    })));
  }
});
