// The public REST API, called with the Bearer token from session storage. Errors carry the
// API's {"error", "detail"} body; a 401 (revoked or invalid token) goes to onUnauthorized.

export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail);
    this.status = status;
    this.code = code;
  }
}

export function createApi(token, onUnauthorized) {
  async function call(method, path, { json, query, blob = false, keepalive = false } = {}) {
    const url = new URL(path, window.location.origin);
    for (const [key, value] of Object.entries(query ?? {})) {
      if (value === undefined || value === null) continue;
      for (const one of Array.isArray(value) ? value : [value]) url.searchParams.append(key, String(one));
    }
    const headers = { Authorization: `Bearer ${token}` };
    let body;
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    }
    const response = await fetch(url, { method, headers, body, keepalive, cache: "no-store" });
    if (!response.ok) {
      let data = null;
      try { data = await response.json(); } catch { /* not JSON */ }
      const error = new ApiError(response.status, data?.error ?? `http_${response.status}`,
        data?.detail ?? response.statusText);
      if (response.status === 401) onUnauthorized(error);
      throw error;
    }
    if (blob) return response.blob();
    if (response.status === 204) return null;
    return response.json();
  }
  /** POST a multipart form with upload progress (fetch has none): resolves to the JSON answer. */
  function upload(path, form, onProgress) {
    return new Promise((resolve, reject) => {
      const request = new XMLHttpRequest();
      request.open("POST", new URL(path, window.location.origin));
      request.setRequestHeader("Authorization", `Bearer ${token}`);
      request.responseType = "json";
      request.upload.onprogress = (event) => onProgress?.(event.loaded, event.total);
      request.onerror = () => reject(new ApiError(0, "network", "the upload was interrupted"));
      request.onload = () => {
        const data = request.response;
        if (request.status >= 200 && request.status < 300) {
          resolve(data);
          return;
        }
        const error = new ApiError(request.status, data?.error ?? `http_${request.status}`,
          data?.detail ?? request.statusText);
        if (request.status === 401) onUnauthorized(error);
        reject(error);
      };
      request.send(form);
    });
  }
  return {
    upload,
    get: (path, options) => call("GET", path, options),
    put: (path, json, options) => call("PUT", path, { ...options, json }),
    post: (path, options) => call("POST", path, options),
    del: (path, options) => call("DELETE", path, options),
    // Called from pagehide: must not be awaited, must outlive the page.
    beacon: (method, path, query) => call(method, path, { query, keepalive: true }).catch(() => {}),
  };
}
