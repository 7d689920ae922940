'use strict';
// console.* in AWS's log formats.
//
// TEXT (the default): `<ISO time>\t<request id>\t<LEVEL>\t<message>`, one
// record per line: newlines inside a message become \r so that a stack
// trace stays one record. JSON (LoggingConfig.LogFormat JSON, which sets
// AWS_LAMBDA_LOG_FORMAT): {"timestamp", "level", "requestId", "message"}
// plus errorType/errorMessage/stackTrace when an Error is logged, and
// AWS_LAMBDA_LOG_LEVEL drops records below that level. console.log is
// INFO; console.fatal exists as on AWS.
//
// stdout is the sandbox's log file, so each record is one synchronous
// write: records keep their order with the platform's lines.

const util = require('util');
const errors = require('./errors.js');

const LEVELS = {
  TRACE: 1,
  DEBUG: 2,
  INFO: 3,
  WARN: 4,
  ERROR: 5,
  FATAL: 6,
};

let requestId; // the call in progress, as its records name it

function setRequestId(id) {
  requestId = id;
}

function errorFields(value) {
  return {
    errorType: (value.constructor && value.constructor.name) || 'UnknownError',
    errorMessage: value.message,
    stackTrace: typeof value.stack === 'string' ? value.stack.split('\n') : value.stack,
  };
}

function jsonReplacer(_key, value) {
  return value instanceof Error ? Object.assign(errorFields(value), value) : value;
}

function textRecord(level, params) {
  return `${new Date().toISOString()}\t${requestId}\t${level}\t${util.format(...params)}`;
}

function jsonRecord(level, params) {
  const record = { timestamp: new Date().toISOString(), level, requestId };
  if (params.length === 1) {
    record.message = params[0];
    try {
      return JSON.stringify(record, jsonReplacer);
    } catch (_) {
      record.message = util.format(params[0]);
      return JSON.stringify(record);
    }
  }
  record.message = util.format(...params);
  const error = params.find((p) => p instanceof Error);
  if (error !== undefined) {
    Object.assign(record, errorFields(error));
  }
  return JSON.stringify(record);
}

let errorLogger = null;

function install(env) {
  const json = (env.AWS_LAMBDA_LOG_FORMAT || '').toUpperCase() === 'JSON';
  const render = json ? jsonRecord : textRecord;
  const threshold = LEVELS[(env.AWS_LAMBDA_LOG_LEVEL || '').toUpperCase()] || LEVELS.TRACE;
  const write = (level) => (...params) => {
    process.stdout.write(render(level, params).replace(/\n/g, '\r') + '\n');
  };
  const quiet = () => {};
  for (const [name, level] of [
    ['trace', 'TRACE'],
    ['debug', 'DEBUG'],
    ['info', 'INFO'],
    ['warn', 'WARN'],
    ['error', 'ERROR'],
  ]) {
    console[name] = LEVELS[level] >= threshold ? write(level) : quiet;
  }
  console.log = console.info;
  console.fatal = write('FATAL');
  errorLogger = json
    ? (_title, err) => console.error(errors.intoError(err))
    : (title, err) => console.error(title, errors.formatted(errors.intoError(err)));
}

// The runtime's own report of an error: "Invoke Error", "Uncaught
// Exception", ...
function logError(title, err) {
  if (errorLogger === null) {
    process.stderr.write(`${title} ${errors.formatted(errors.intoError(err))}\n`);
  } else {
    errorLogger(title, err);
  }
}

module.exports = { install, logError, setRequestId };
