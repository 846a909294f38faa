import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Asset {
  body: Buffer;
  contentType: string;
  etag: string;
}

const PUBLIC = join(__dirname, 'public');

/**
 * The page's files, served by the service itself (no CDN, works offline): its own script and
 * styles, and uPlot from node_modules. Read once at start-up.
 */
const FILES: Record<string, { path: string; contentType: string }> = {
  'dashboard.js': { path: join(PUBLIC, 'dashboard.js'), contentType: 'text/javascript' },
  'dashboard.css': { path: join(PUBLIC, 'dashboard.css'), contentType: 'text/css' },
  'uPlot.iife.min.js': {
    path: require.resolve('uplot/dist/uPlot.iife.min.js'),
    contentType: 'text/javascript',
  },
  'uPlot.min.css': { path: require.resolve('uplot/dist/uPlot.min.css'), contentType: 'text/css' },
};

export const INDEX_HTML = join(PUBLIC, 'index.html');

export function loadAssets(): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  for (const [name, file] of Object.entries(FILES)) {
    const body = readFileSync(file.path);
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
    assets.set(name, { body, contentType: `${file.contentType}; charset=utf-8`, etag });
  }
  return assets;
}
