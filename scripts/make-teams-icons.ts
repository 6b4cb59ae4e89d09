import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'node:zlib';

/**
 * Draws the Teams app icons (a shield with a check mark) and writes them as PNGs:
 * manifest/teams/color.png (192x192, full colour) and outline.png (32x32, white on transparent),
 * the sizes the Teams manifest asks for. Run: npx tsx scripts/make-teams-icons.ts
 */

type Rgba = [number, number, number, number];

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes: Buffer): number {
  let c = 0xffffffff;
  for (const b of bytes) c = (CRC_TABLE[(c ^ b) & 0xff] ?? 0) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

/** Encode an RGBA image as a PNG (8-bit, colour type 6, no filtering). */
export function encodePng(size: number, pixel: (x: number, y: number) => Rgba): Buffer {
  const raw = Buffer.alloc(size * (size * 4 + 1));
  for (let y = 0; y < size; y++) {
    raw[y * (size * 4 + 1)] = 0;
    for (let x = 0; x < size; x++) raw.set(pixel(x, y), y * (size * 4 + 1) + 1 + x * 4);
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(size, 0);
  header.writeUInt32BE(size, 4);
  header.set([8, 6, 0, 0, 0], 8);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(raw, { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** Inside the shield, in unit coordinates (0..1). */
function inShield(u: number, v: number): boolean {
  if (v < 0.14 || v > 0.88) return false;
  const half = v < 0.52 ? 0.32 : 0.32 * Math.sqrt(Math.max(0, (0.88 - v) / 0.36));
  const dip = v < 0.2 ? Math.abs(u - 0.5) * 0.2 : 0;
  return Math.abs(u - 0.5) <= half && v >= 0.14 + dip * 0.5;
}

/** On the check mark stroke, in unit coordinates. */
function inCheck(u: number, v: number, width: number): boolean {
  const segment = (ax: number, ay: number, bx: number, by: number) => {
    const dx = bx - ax;
    const dy = by - ay;
    const t = Math.max(0, Math.min(1, ((u - ax) * dx + (v - ay) * dy) / (dx * dx + dy * dy)));
    return Math.hypot(u - (ax + t * dx), v - (ay + t * dy)) <= width;
  };
  return segment(0.36, 0.48, 0.46, 0.6) || segment(0.46, 0.6, 0.65, 0.36);
}

/** Supersampled coverage of a shape over one pixel (anti-aliasing). */
function coverage(x: number, y: number, size: number, shape: (u: number, v: number) => boolean): number {
  const n = 4;
  let hits = 0;
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) if (shape((x + (i + 0.5) / n) / size, (y + (j + 0.5) / n) / size)) hits++;
  return hits / (n * n);
}

const BACKGROUND: Rgba = [15, 108, 189, 255];
const SHIELD: Rgba = [255, 255, 255, 255];
const CHECK: Rgba = [15, 108, 189, 255];

const mix = (a: Rgba, b: Rgba, t: number): Rgba =>
  a.map((c, i) => Math.round(c + ((b[i] ?? 0) - c) * t)) as Rgba;

/** 192x192 full-colour icon: white shield with a blue check on the accent colour. */
export function colorIcon(): Buffer {
  const size = 192;
  return encodePng(size, (x, y) => {
    const shield = coverage(x, y, size, inShield);
    const check = coverage(x, y, size, (u, v) => inShield(u, v) && inCheck(u, v, 0.045));
    return mix(mix(BACKGROUND, SHIELD, shield), CHECK, check);
  });
}

/** 32x32 outline icon: the shield outline and check in white on a transparent background. */
export function outlineIcon(): Buffer {
  const size = 32;
  const ring = (u: number, v: number) =>
    inShield(u, v) && !inShield(0.5 + (u - 0.5) * 1.3, 0.51 + (v - 0.51) * 1.2);
  return encodePng(size, (x, y) => {
    const a = Math.max(
      coverage(x, y, size, ring),
      coverage(x, y, size, (u, v) => inCheck(u, v, 0.05)),
    );
    return [255, 255, 255, Math.round(a * 255)];
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const dir = new URL('../manifest/teams/', import.meta.url);
  writeFileSync(new URL('color.png', dir), colorIcon());
  writeFileSync(new URL('outline.png', dir), outlineIcon());
  process.stdout.write('wrote manifest/teams/color.png (192x192) and outline.png (32x32)\n');
}
