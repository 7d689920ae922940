'use strict';
// Response streaming: the responseStream a streamifyResponse handler
// writes to, sent to the Runtime API as it is written (a chunked POST in
// streaming mode), and awslambda.HttpResponseStream, which puts a function
// URL's status and headers (the prelude: JSON, then 8 zero bytes) before
// the body.
//
// The POST starts with the first write or with end(), so a handler may set
// the content type until then. A failure ends the body with the trailers
// Lambda-Runtime-Function-Error-Type and -Error-Body (the error document,
// base64), which turn the call into an error.

const { Writable } = require('stream');
const errors = require('./errors.js');

const DEFAULT_CONTENT_TYPE = 'application/octet-stream';
const PRELUDE_CONTENT_TYPE = 'application/vnd.awslambda.http-integration-response';
const PRELUDE_DELIMITER = Buffer.alloc(8);

class ResponseStream extends Writable {
  constructor(api, requestId, highWaterMark) {
    super(highWaterMark === undefined ? {} : { highWaterMark });
    this._api = api;
    this._requestId = requestId;
    this._contentType = DEFAULT_CONTENT_TYPE;
    this._prelude = null;
    this._post = null;
    this._ended = false; // the body's last chunk has gone: no trailers can follow
    this.reply = null; // the Runtime API's answer to the POST, once it ends
  }

  setContentType(contentType) {
    if (this._post !== null) {
      throw new errors.InvalidStreamingOperation('Cannot set content-type, too late.');
    }
    this._contentType = String(contentType);
  }

  _open() {
    if (this._post === null) {
      this._post = this._api.openStream(this._requestId, this._contentType);
      this.reply = this._post.reply;
      if (this._prelude !== null) {
        this._post.write(Buffer.from(this._prelude, 'utf8'), () => {});
        this._post.write(PRELUDE_DELIMITER, () => {});
      }
    }
    return this._post;
  }

  write(chunk, encoding, callback) {
    // Like AWS's: anything that is not bytes or a string is sent as JSON.
    if (typeof chunk !== 'string' && !(chunk instanceof Uint8Array)) {
      chunk = JSON.stringify(chunk);
    }
    return super.write(chunk, encoding, callback);
  }

  _write(chunk, _encoding, callback) {
    this._open().write(chunk, callback);
  }

  _final(callback) {
    if (!this._ended) {
      this._ended = true;
      this._open().end([]);
    }
    callback();
  }

  // Ends the body with err in the trailers (the call fails); returns the
  // Runtime API's reply.
  fail(err) {
    if (this._ended) {
      return this.reply;
    }
    this._ended = true;
    const doc = errors.toResponse(err);
    const post = this._open();
    post.end([
      ['Lambda-Runtime-Function-Error-Type', doc.errorType],
      ['Lambda-Runtime-Function-Error-Body', Buffer.from(JSON.stringify(doc)).toString('base64')],
    ]);
    this.destroy();
    return this.reply;
  }
}

class HttpResponseStream {
  static from(stream, prelude) {
    stream.setContentType(PRELUDE_CONTENT_TYPE);
    stream._prelude = JSON.stringify(prelude);
    return stream;
  }
}

module.exports = { ResponseStream, HttpResponseStream };
