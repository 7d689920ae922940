'use strict';
// Errors as AWS's Node.js runtime reports them.
//
// The caller gets {errorType, errorMessage, trace}; the log gets the error
// with its enumerable properties and its stack as lines. The runtime's own
// failures are named Runtime.X (Runtime.ImportModuleError,
// Runtime.HandlerNotFound, ...), as AWS names them.

const util = require('util');

function runtimeError(name) {
  const cls = class extends Error {};
  Object.defineProperty(cls, 'name', { value: name });
  cls.prototype.name = `Runtime.${name}`;
  return cls;
}

const ImportModuleError = runtimeError('ImportModuleError');
const HandlerNotFound = runtimeError('HandlerNotFound');
const MalformedHandlerName = runtimeError('MalformedHandlerName');
const UserCodeSyntaxError = runtimeError('UserCodeSyntaxError');
const MalformedStreamingHandler = runtimeError('MalformedStreamingHandler');
const InvalidStreamingOperation = runtimeError('InvalidStreamingOperation');

const NodeJsExit = class extends runtimeError('NodeJsExit') {
  constructor() {
    super(
      'The Lambda runtime client detected an unexpected Node.js exit code. This is most commonly caused by ' +
        'a Promise that was never settled. For more information, see ' +
        'https://nodejs.org/docs/latest/api/process.html#exit-codes',
    );
  }
};

const UnhandledPromiseRejection = class extends runtimeError('UnhandledPromiseRejection') {
  constructor(reason) {
    super(reason instanceof Error ? `${reason.name}: ${reason.message}` : String(reason));
    this.reason = reason;
  }
};

function looksLikeError(value) {
  return (
    value !== null &&
    typeof value === 'object' &&
    typeof value.name === 'string' &&
    typeof value.message === 'string' &&
    typeof value.stack === 'string' &&
    value.name !== '' &&
    value.message !== ''
  );
}

// DEL is not allowed in the header that carries the type: escape it.
function clean(text) {
  return typeof text === 'string' ? text.replace(/\x7F/g, '%7F') : text;
}

// The document the caller receives.
function toResponse(error) {
  try {
    if (util.types.isNativeError(error) || looksLikeError(error)) {
      return {
        errorType: clean(error.name),
        errorMessage: clean(error.message),
        trace: clean(String(error.stack)).split('\n'),
      };
    }
    return { errorType: typeof error, errorMessage: String(error), trace: [] };
  } catch (_) {
    return {
      errorType: 'handled',
      errorMessage:
        'callback called with Error argument, but there was a problem while retrieving one or more of its message, name, and stack',
    };
  }
}

function intoError(value) {
  return value instanceof Error ? value : new Error(value);
}

// The error as the text log shows it: a tab, then JSON with its own
// enumerable properties and the stack split into lines.
function formatted(error) {
  const expand = (_key, value) => {
    if (value instanceof Error) {
      const out = Object.assign({ errorType: value.name, errorMessage: value.message, code: value.code }, value);
      if (typeof value.stack === 'string') {
        out.stack = value.stack.split('\n');
      }
      return out;
    }
    return value;
  };
  try {
    return '\t' + JSON.stringify(error, expand);
  } catch (_) {
    return '\t' + JSON.stringify(toResponse(error));
  }
}

module.exports = {
  ImportModuleError,
  HandlerNotFound,
  MalformedHandlerName,
  UserCodeSyntaxError,
  MalformedStreamingHandler,
  InvalidStreamingOperation,
  NodeJsExit,
  UnhandledPromiseRejection,
  toResponse,
  intoError,
  formatted,
};
