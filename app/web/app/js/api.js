// The public JSON API (/v1/...): the resident's session, refreshed before it expires,
// and every failure turned into an ApiProblem with the server's stable `code`.
const SESSION = "suishen.session";
const REFRESH_MARGIN_MS = 60_000;

export class ApiProblem extends Error {
  constructor(status, body) {
    super(body.code || "unknown");
    this.status = status;
    this.code = body.code || "unknown";
    this.body = body;
  }
}

export class SessionExpired extends ApiProblem {}

export class Offline extends ApiProblem {
  constructor() {
    super(0, { code: "network" });
  }
}

let refreshTimer = null;
let refreshing = null;
const listeners = { expired: [], network: [] };

export function on(event, fn) {
  listeners[event].push(fn);
}

function emit(event, value) {
  for (const fn of listeners[event]) fn(value);
}

export function session() {
  try {
    return JSON.parse(localStorage.getItem(SESSION) || "null");
  } catch {
    return null;
  }
}

function keep(tokens) {
  const value = {
    access: tokens.access_token,
    refresh: tokens.refresh_token,
    expiresAt: Date.now() + tokens.expires_in * 1000,
  };
  localStorage.setItem(SESSION, JSON.stringify(value));
  scheduleRefresh();
}

export function forget() {
  localStorage.removeItem(SESSION);
  clearTimeout(refreshTimer);
}

// Renew the access token a minute before it expires, with the refresh token.
export function scheduleRefresh() {
  clearTimeout(refreshTimer);
  const s = session();
  if (!s) return;
  const wait = Math.max(0, s.expiresAt - REFRESH_MARGIN_MS - Date.now());
  refreshTimer = setTimeout(() => refresh().catch(() => {}), wait);
}

export function refresh() {
  if (refreshing) return refreshing;
  const s = session();
  if (!s) return Promise.reject(new SessionExpired(401, { code: "unauthorized" }));
  refreshing = call("POST", "/v1/auth/refresh", { body: { refresh_token: s.refresh }, auth: false })
    .then(keep)
    .catch((problem) => {
      if (problem instanceof ApiProblem && problem.status === 401) {
        forget();
        throw new SessionExpired(401, problem.body);
      }
      throw problem;
    })
    .finally(() => {
      refreshing = null;
    });
  return refreshing;
}

async function call(method, path, { body, auth = true, headers = {} } = {}) {
  const h = { Accept: "application/json", ...headers };
  if (body !== undefined) h["Content-Type"] = "application/json";
  if (auth) {
    const s = session();
    if (!s) throw new SessionExpired(401, { code: "unauthorized" });
    h.Authorization = `Bearer ${s.access}`;
  }
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: h,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch {
    emit("network", false);
    throw new Offline();
  }
  emit("network", true);
  const text = await response.text();
  let data = {};
  try {
    data = text ? JSON.parse(text) : {};
  } catch {
    data = {};
  }
  if (!response.ok) throw new ApiProblem(response.status, data);
  return data;
}

// A call as the resident: renews the token first when it is about to expire, and once
// more after a 401; a session that cannot be renewed sends the user to log in.
export async function api(method, path, options = {}) {
  if (options.auth === false) return call(method, path, options);
  const s = session();
  if (s && s.expiresAt - Date.now() < REFRESH_MARGIN_MS / 2) await refreshOrExpire();
  try {
    return await call(method, path, options);
  } catch (problem) {
    if (!(problem instanceof ApiProblem) || problem.status !== 401 || problem instanceof SessionExpired) {
      if (problem instanceof SessionExpired) emit("expired", problem);
      throw problem;
    }
    await refreshOrExpire();
    return call(method, path, options);
  }
}

async function refreshOrExpire() {
  try {
    await refresh();
  } catch (problem) {
    if (problem instanceof SessionExpired) emit("expired", problem);
    throw problem;
  }
}

export async function login(phone, otp) {
  keep(await call("POST", "/v1/auth/login", { body: { phone, otp }, auth: false }));
}

export async function logout() {
  try {
    await call("POST", "/v1/auth/logout");
  } finally {
    forget();
  }
}

export function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
