import type { IncomingMessage } from 'node:http';
import { isLoopbackAddress } from './loopback.js';

/** `Host` values of this machine: localhost, 127.0.0.1 or [::1], with any port. */
const LOCAL_HOST = /^(localhost|127\.0\.0\.1|\[::1\])(:\d{1,5})?$/i;
/** Headers a proxy, tunnel or load balancer adds: their presence means the caller is not on this machine. */
const PROXY_HEADER = /^(forwarded|x-forwarded(-.*)?|x-real-ip)$/i;
/** `Sec-Fetch-Site` values of requests the page itself makes (or that a person typed). */
const SAME_SITE_FETCH = new Set(['same-origin', 'none']);

const shown = (value: string) => JSON.stringify(value.slice(0, 100));

/**
 * Why a request may not use what local mode serves without credentials (the Teams endpoint without an
 * app id, the preview page), or undefined when it may: the socket must be loopback, no proxy header
 * (`Forwarded`, `X-Forwarded-*`, `X-Real-IP`) and a `Host` of this machine. A proxy or tunnel on the same
 * host makes every caller loopback; the headers and the Host tell it apart, and the Host check also
 * stops DNS rebinding.
 */
export function localOnlyProblem(req: IncomingMessage): string | undefined {
  if (!isLoopbackAddress(req.socket.remoteAddress)) return 'the request does not come from this machine';
  const proxyHeader = Object.keys(req.headers).find((name) => PROXY_HEADER.test(name));
  if (proxyHeader) return `the request came through a proxy or tunnel (it carries ${proxyHeader})`;
  const host = req.headers.host ?? '';
  if (!LOCAL_HOST.test(host)) return `the Host ${shown(host)} is not localhost, 127.0.0.1 or [::1]`;
  return undefined;
}

/**
 * Why a state-changing request looks cross-site (another site's page making the browser post here), or
 * undefined. Browsers send `Sec-Fetch-Site` and `Origin` on such requests; other clients send neither.
 */
export function crossSiteProblem(req: IncomingMessage): string | undefined {
  const site = req.headers['sec-fetch-site'];
  if (typeof site === 'string' && !SAME_SITE_FETCH.has(site.toLowerCase()))
    return `the request was sent from another site (Sec-Fetch-Site ${shown(site)})`;
  const origin = req.headers.origin;
  if (origin !== undefined && origin.toLowerCase() !== `http://${req.headers.host ?? ''}`.toLowerCase())
    return `the request was sent from another origin (${shown(origin)})`;
  return undefined;
}
