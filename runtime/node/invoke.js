'use strict';
// One call of the handler, with AWS's rules for when it is over:
//
// - an async handler (or one returning a promise) is done when the promise
//   settles: its value is the response, its rejection the error;
// - a callback handler is done when it calls callback(err, result): at once
//   for an error, else when the event loop is empty
//   (context.callbackWaitsForEmptyEventLoop, true by default) or at once
//   when that is false; context.succeed/fail/done answer at once;
// - a handler that never answers is done when the event loop empties: an
//   async one fails with Runtime.NodeJsExit (Node.js 22 and later), any
//   other answers null.
//
// "The event loop is empty" is process 'beforeExit', which fires because
// the Runtime API's socket is unref'd while the handler runs (rapi.js).

const errors = require('./errors.js');
const logging = require('./logging.js');
const { ResponseStream } = require('./streaming.js');

const NODE_MAJOR = Number(process.versions.node.split('.')[0]);
let onLoopEmpty = null;

process.on('beforeExit', () => {
  const run = onLoopEmpty;
  onLoopEmpty = null;
  if (run !== null) {
    run();
  }
});

function isPromise(value) {
  return value !== null && value !== undefined && typeof value.then === 'function';
}

function parseJson(text, what) {
  if (text === undefined) {
    return undefined;
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`Cannot parse ${what} as json: ${err}`);
  }
}

// The context's fields that come from the environment and the event's headers.
function contextFields(headers) {
  const env = process.env;
  const deadline = Number(headers['lambda-runtime-deadline-ms']);
  return {
    functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION,
    functionName: env.AWS_LAMBDA_FUNCTION_NAME,
    memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME,
    clientContext: parseJson(headers['lambda-runtime-client-context'], 'ClientContext'),
    identity: parseJson(headers['lambda-runtime-cognito-identity'], 'CognitoIdentity'),
    invokedFunctionArn: headers['lambda-runtime-invoked-function-arn'],
    awsRequestId: headers['lambda-runtime-aws-request-id'],
    tenantId: headers['lambda-runtime-aws-tenant-id'],
    getRemainingTimeInMillis: () => deadline - Date.now(),
  };
}

function serialize(result) {
  try {
    return JSON.stringify(result === undefined ? null : result);
  } catch (_) {
    return undefined;
  }
}

class Invoker {
  constructor(api, fn, meta) {
    this.api = api;
    this.handler = fn;
    this.meta = meta;
  }

  // Runs one event; resolves to its answer for the Runtime API
  // ({response} or {errorType, error}), or to null when it streamed its
  // answer already.
  run(next) {
    const headers = next.headers;
    const id = headers['lambda-runtime-aws-request-id'];
    logging.setRequestId(id);
    if (headers['lambda-runtime-trace-id']) {
      process.env._X_AMZN_TRACE_ID = headers['lambda-runtime-trace-id'];
    } else {
      delete process.env._X_AMZN_TRACE_ID;
    }
    return this.meta.streaming ? this._streamed(id, next) : this._buffered(id, next);
  }

  _buffered(id, next) {
    return new Promise((resolve) => {
      let finished = false;
      let waitsForEmptyLoop = true;
      const finish = (error, result) => {
        if (finished) {
          return;
        }
        finished = true;
        onLoopEmpty = null;
        resolve(error === null ? this._response(result) : this._error(error));
      };
      const callback = (err, result) => {
        if (finished) {
          return;
        }
        if (err !== undefined && err !== null) {
          finish(err);
        } else if (!waitsForEmptyLoop) {
          finish(null, result);
        } else {
          onLoopEmpty = () => setImmediate(() => finish(null, result));
        }
      };
      const context = {
        get callbackWaitsForEmptyEventLoop() {
          return waitsForEmptyLoop;
        },
        set callbackWaitsForEmptyEventLoop(value) {
          waitsForEmptyLoop = value;
        },
        succeed: (result) => finish(null, result),
        fail: (err) => finish(err === undefined || err === null ? 'handled' : err),
        done: (err, result) => (err !== undefined && err !== null ? finish(err) : finish(null, result)),
      };
      // Never answered: the loop empties with nothing left to wait for. AWS's
      // runtime for Node.js 22 and later fails an async handler then; the
      // one for Node.js 20 (aws-lambda-ric 3) answers null, as for any other.
      onLoopEmpty = () => (this.meta.isAsync && NODE_MAJOR >= 22 ? finish(new errors.NodeJsExit()) : finish(null, null));
      try {
        Object.assign(context, contextFields(next.headers));
        const result = this.handler(JSON.parse(next.body.toString('utf8') || 'null'), context, callback);
        if (isPromise(result)) {
          result.then(
            (value) => finish(null, value),
            (err) => finish(err === undefined || err === null ? 'handled' : err),
          );
        }
      } catch (err) {
        finish(err);
      }
    });
  }

  async _streamed(id, next) {
    const stream = new ResponseStream(this.api, id, this.meta.highWaterMark);
    let waitsForEmptyLoop = true;
    const context = {
      get callbackWaitsForEmptyEventLoop() {
        return waitsForEmptyLoop;
      },
      set callbackWaitsForEmptyEventLoop(value) {
        waitsForEmptyLoop = value;
      },
    };
    onLoopEmpty = null;
    try {
      Object.assign(context, contextFields(next.headers));
      const result = this.handler(JSON.parse(next.body.toString('utf8') || 'null'), stream, context);
      if (!isPromise(result)) {
        return this._streamFailed(stream, 'Streaming does not support non-async handlers.');
      }
      if ((await result) !== undefined) {
        console.warn('Streaming handlers ignore return values.');
      }
      if (!stream.writableFinished) {
        if (stream.writableEnded) {
          await new Promise((resolve) => stream.once('finish', resolve));
        } else {
          return this._streamFailed(stream, 'Response stream is not finished.');
        }
      }
      await stream.reply;
    } catch (err) {
      return this._streamFailed(stream, err);
    }
    if (waitsForEmptyLoop) {
      await new Promise((resolve) => {
        onLoopEmpty = () => setImmediate(resolve);
      });
    }
    return null;
  }

  async _streamFailed(stream, err) {
    logging.logError('Invoke Error', err);
    try {
      await stream.fail(err);
    } catch (_) {
      // The Runtime API has gone: the next `next` will say so.
    }
    return null;
  }

  _response(result) {
    const body = serialize(result);
    return body === undefined ? this._error(new Error('Unable to stringify response body')) : { response: body };
  }

  _error(err) {
    logging.logError('Invoke Error', err);
    const doc = errors.toResponse(err);
    return { errorType: doc.errorType, error: serialize(doc) || '{}' };
  }
}

module.exports = { Invoker };
