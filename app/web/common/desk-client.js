// A machine client's session for a console (the hospital desk, the operator view): client
// id + secret kept only in sessionStorage, under a key of the page's own site so two
// consoles in one tab keep their own clients; an access token from POST /v1/auth/token
// renewed a minute before it expires (and once after a 401); every failure an ApiProblem.
const KEY = "suishen.client:" + location.pathname.replace(/[^/]*$/, "");
const MARGIN_MS = 60_000;

export class ApiProblem extends Error {
  constructor(status, body) {
    super(body.code || "unknown");
    this.status = status;
    this.code = body.code || "unknown";
    this.body = body;
  }
}

let token = null;
let timer = null;
let pending = null;

function stored() {
  try {
    return JSON.parse(sessionStorage.getItem(KEY) || "null");
  } catch {
    return null;
  }
}

export function clientId() {
  return stored()?.client_id ?? null;
}

export function loggedIn() {
  return stored() !== null;
}

async function fetchToken(creds) {
  let answer;
  try {
    answer = await fetch("/v1/auth/token", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ grant_type: "client_credentials", ...creds }),
    });
  } catch {
    throw new ApiProblem(0, { code: "network" });
  }
  const body = await answer.json().catch(() => ({}));
  if (!answer.ok) throw new ApiProblem(answer.status, body);
  token = body.access_token;
  clearTimeout(timer);
  const wait = Math.max(5_000, body.expires_in * 1000 - MARGIN_MS);
  timer = setTimeout(() => renew().catch(() => {}), wait);
  return token;
}

function renew() {
  const creds = stored();
  if (!creds) return Promise.reject(new ApiProblem(401, { code: "unauthorized" }));
  pending ??= fetchToken(creds).finally(() => {
    pending = null;
  });
  return pending;
}

export async function login(clientIdValue, clientSecret) {
  const creds = { client_id: clientIdValue, client_secret: clientSecret };
  await fetchToken(creds);
  sessionStorage.setItem(KEY, JSON.stringify(creds));
}

export function logout() {
  sessionStorage.removeItem(KEY);
  token = null;
  clearTimeout(timer);
}

// One call of the JSON API with the client's token; `headers` may carry an Idempotency-Key.
export async function call(method, path, { body, headers = {} } = {}) {
  for (let attempt = 0; ; attempt += 1) {
    const bearer = token ?? (await renew());
    let answer;
    try {
      answer = await fetch(path, {
        method,
        headers: {
          Accept: "application/json",
          Authorization: `Bearer ${bearer}`,
          ...(body === undefined ? {} : { "Content-Type": "application/json" }),
          ...headers,
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      throw new ApiProblem(0, { code: "network" });
    }
    if (answer.status === 401 && attempt === 0) {
      token = null;
      continue;
    }
    const parsed = await answer.json().catch(() => ({}));
    if (!answer.ok) throw new ApiProblem(answer.status, parsed);
    return parsed;
  }
}

// A key made once per user action: the same action retried (a double click, a retry after
// a network failure) reuses it until that action's answer has arrived.
const keys = new Map();

export function actionKey(action) {
  if (!keys.has(action)) keys.set(action, crypto.randomUUID());
  return keys.get(action);
}

export function actionDone(action) {
  keys.delete(action);
}
