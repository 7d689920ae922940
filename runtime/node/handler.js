'use strict';
// Finding the handler named by _HANDLER ("file.export", "dir/file.a.b"),
// by AWS's rules:
//
// - the part after the last '/' splits at its first '.': the module, then
//   a property path into it (nested with '.');
// - the module is looked for under the task root: the file as named, then
//   `.js` (CommonJS unless the nearest package.json says "type": "module"),
//   `.mjs` (an ES module), `.cjs`; else it is resolved as a package name
//   (node_modules under the task root);
// - a missing module is Runtime.ImportModuleError, a syntax error
//   Runtime.UserCodeSyntaxError, a missing or non-function export
//   Runtime.HandlerNotFound, a name with '..' or without a '.'
//   Runtime.MalformedHandlerName. Anything else the module throws while
//   loading is reported as itself.

const fs = require('fs');
const path = require('path');
const url = require('url');
const errors = require('./errors.js');

const STREAMING = Symbol.for('aws.lambda.runtime.handler.streaming');
const HIGH_WATER_MARK = Symbol.for('aws.lambda.runtime.handler.streaming.highWaterMark');

function isFile(file) {
  try {
    return fs.statSync(file).isFile();
  } catch (_) {
    return false;
  }
}

// Whether the nearest package.json above dir declares ES modules. A
// node_modules directory ends the search, as Node's own lookup does.
function declaresModule(dir) {
  for (;;) {
    if (path.basename(dir) === 'node_modules') {
      return false;
    }
    const manifest = path.join(dir, 'package.json');
    if (fs.existsSync(manifest)) {
      try {
        return JSON.parse(fs.readFileSync(manifest, 'utf8')).type === 'module';
      } catch (err) {
        console.warn(`${manifest} cannot be read, it will be ignored for ES module detection purposes.`, err);
        return false;
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) {
      return false;
    }
    dir = parent;
  }
}

async function importFile(file) {
  return import(url.pathToFileURL(file).href);
}

async function loadModule(taskRoot, moduleDir, name) {
  const base = path.resolve(taskRoot, moduleDir, name);
  if (isFile(base)) {
    return require(base);
  }
  if (isFile(base + '.js')) {
    return declaresModule(path.dirname(base)) ? importFile(base + '.js') : require(base + '.js');
  }
  if (isFile(base + '.mjs')) {
    return importFile(base + '.mjs');
  }
  if (isFile(base + '.cjs')) {
    return require(base + '.cjs');
  }
  return require(require.resolve(name, { paths: [taskRoot, path.resolve(taskRoot, moduleDir)] }));
}

async function load(taskRoot, handlerName) {
  if (handlerName.includes('..')) {
    throw new errors.MalformedHandlerName(
      `'${handlerName}' is not a valid handler name. Use absolute paths when specifying root directories in handler names.`,
    );
  }
  const slash = handlerName.lastIndexOf('/');
  const moduleDir = handlerName.slice(0, slash + 1);
  const tail = handlerName.slice(slash + 1);
  const dot = tail.indexOf('.');
  if (dot < 0) {
    throw new errors.MalformedHandlerName('Bad handler');
  }
  const moduleName = tail.slice(0, dot);
  const exportPath = tail.slice(dot + 1);
  let loaded;
  try {
    loaded = await loadModule(taskRoot, moduleDir, moduleName);
  } catch (err) {
    if (err instanceof SyntaxError) {
      throw new errors.UserCodeSyntaxError(err);
    }
    if (err && err.code === 'MODULE_NOT_FOUND') {
      throw new errors.ImportModuleError(err);
    }
    throw err;
  }
  const fn = exportPath.split('.').reduce((obj, key) => (obj == null ? undefined : obj[key]), loaded);
  if (!fn) {
    throw new errors.HandlerNotFound(`${handlerName} is undefined or not exported`);
  }
  if (typeof fn !== 'function') {
    throw new errors.HandlerNotFound(`${handlerName} is not a function`);
  }
  return fn;
}

// What the runtime needs to know about how to call fn.
function describe(fn) {
  const mode = fn[STREAMING];
  if (mode !== undefined && mode !== null && mode !== false && mode !== 'response') {
    throw new errors.MalformedStreamingHandler('Only response streaming is supported.');
  }
  const mark = parseInt(fn[HIGH_WATER_MARK], 10);
  return {
    streaming: mode === 'response',
    highWaterMark: Number.isNaN(mark) ? undefined : mark,
    isAsync: fn.constructor !== undefined && fn.constructor.name === 'AsyncFunction',
    arity: fn.length,
  };
}

// The `awslambda` global a handler module may use while it loads.
function streamifyResponse(fn, options) {
  fn[STREAMING] = 'response';
  if (options && typeof options.highWaterMark === 'number') {
    fn[HIGH_WATER_MARK] = Math.trunc(options.highWaterMark);
  }
  return fn;
}

module.exports = { load, describe, streamifyResponse };
