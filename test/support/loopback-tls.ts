import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** A key and a self-signed certificate for 127.0.0.1 and localhost, as PEM text and files. */
export interface LoopbackTls {
  keyFile: string;
  certFile: string;
  key: string;
  cert: string;
}

/**
 * Make a one-day self-signed certificate for a fake HTTPS server on the loopback (the Entra token
 * endpoint: the bot refuses an http:// authority), in `dir` as `{name}-key.pem` and `{name}-cert.pem`.
 * A child bot trusts it through `NODE_EXTRA_CA_CERTS=certFile`. Needs `openssl` on PATH.
 */
export function loopbackTls(dir: string, name = 'loopback'): LoopbackTls {
  const keyFile = join(dir, `${name}-key.pem`);
  const certFile = join(dir, `${name}-cert.pem`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ],
    { stdio: 'ignore' },
  );
  return { keyFile, certFile, key: readFileSync(keyFile, 'utf8'), cert: readFileSync(certFile, 'utf8') };
}
