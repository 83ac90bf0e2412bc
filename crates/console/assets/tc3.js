// TC3-HMAC-SHA256 in the browser, through WebCrypto: the same signature the official SDKs compute.
// Signed headers are `content-type;host`; the host is the one the browser sends (location.host).

const enc = new TextEncoder();

export function available() {
  return Boolean(globalThis.crypto && globalThis.crypto.subtle);
}

function hex(buf) {
  return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, "0")).join("");
}

export async function sha256Hex(bytes) {
  return hex(await crypto.subtle.digest("SHA-256", bytes));
}

async function hmac(key, msg) {
  const k = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return crypto.subtle.sign("HMAC", k, enc.encode(msg));
}

/** The UTC date of a Unix timestamp, as the credential scope wants it. */
export function scopeDate(timestamp) {
  return new Date(timestamp * 1000).toISOString().slice(0, 10);
}

/**
 * The Authorization header for a POST / with the given content type, host and body hash.
 * @param {{secretId: string, secretKey: string, service?: string, host: string, contentType: string,
 *          payloadHash: string, timestamp: number}} r
 */
export async function authorization(r) {
  const service = r.service || "scf";
  const date = scopeDate(r.timestamp);
  const canonical = `POST\n/\n\ncontent-type:${r.contentType}\nhost:${r.host}\n\ncontent-type;host\n${r.payloadHash}`;
  const scope = `${date}/${service}/tc3_request`;
  const toSign = `TC3-HMAC-SHA256\n${r.timestamp}\n${scope}\n${await sha256Hex(enc.encode(canonical))}`;
  const kDate = await hmac(enc.encode(`TC3${r.secretKey}`), date);
  const kService = await hmac(kDate, service);
  const kSigning = await hmac(kService, "tc3_request");
  const signature = hex(await hmac(kSigning, toSign));
  return `TC3-HMAC-SHA256 Credential=${r.secretId}/${scope}, SignedHeaders=content-type;host, Signature=${signature}`;
}
