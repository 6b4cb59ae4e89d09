import { isIP } from 'node:net';

/** True for 127.0.0.0/8, ::1 (any spelling) and IPv4-mapped loopback (::ffff:127.x.x.x); false otherwise. */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (!address) return false;
  const lower = address.toLowerCase().replace(/%.*$/, '');
  const v4 = lower.startsWith('::ffff:') ? lower.slice(7) : lower;
  if (isIP(v4) === 4) return v4.split('.')[0] === '127';
  if (isIP(lower) !== 6) return false;
  return lower === '::1' || /^(0{1,4}:){7}0{0,3}1$/.test(lower);
}
