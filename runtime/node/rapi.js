'use strict';
// The Runtime API (2018-06-01) over one keep-alive TCP connection.
//
// A raw HTTP/1.1 client rather than node:http: a call costs one `next`
// and one answer, and node:http's machinery (agents, IncomingMessage,
// header objects) costs more than the rest of a warm call. Requests may be
// pipelined: an answer and the following `next` leave in one write, and
// replies are matched to requests in order (HTTP/1.1 answers in order).
//
// The socket holds the event loop open only while a request waits for its
// reply: between `next` returning and the answer being posted it is
// unref'd, so that "the event loop is empty" (process 'beforeExit') means
// the handler's own work is done, which callbackWaitsForEmptyEventLoop
// relies on.

const net = require('net');

const API = '/2018-06-01/runtime';
const CRLF = '\r\n';
const MAX_HEAD = 64 * 1024;

class RuntimeApiError extends Error {}

class RuntimeApi {
  constructor(address) {
    const colon = address.lastIndexOf(':');
    this.host = address.slice(0, colon);
    this.port = Number(address.slice(colon + 1));
    this.hostHeader = `Host: ${address}${CRLF}`;
    this.pending = []; // reply handlers, oldest first
    this.buffer = null;
    this.socket = null;
    this.corked = false;
  }

  connect() {
    const socket = net.createConnection({ host: this.host, port: this.port, noDelay: true });
    socket.on('data', (data) => this._onData(data));
    socket.on('error', (err) => this._fail(err));
    socket.on('close', () => this._fail(new RuntimeApiError('the Runtime API closed the connection')));
    socket.unref();
    this.socket = socket;
  }

  _write(data, onFlushed) {
    if (this.socket === null) {
      this.connect();
    }
    const socket = this.socket;
    if (!this.corked) {
      // Everything written in this tick leaves in one segment.
      this.corked = true;
      socket.cork();
      process.nextTick(() => {
        this.corked = false;
        socket.uncork();
      });
    }
    return socket.write(data, onFlushed);
  }

  _expect() {
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      if (this.pending.length === 1) {
        this.socket.ref();
      }
    });
  }

  _fail(err) {
    const pending = this.pending;
    this.pending = [];
    for (const p of pending) {
      p.reject(err);
    }
    if (pending.length === 0 && err instanceof RuntimeApiError) {
      // Nothing was waiting: the platform has let this runtime go.
      process.exit(0);
    }
  }

  _onData(data) {
    this.buffer = this.buffer === null ? data : Buffer.concat([this.buffer, data]);
    while (this.buffer !== null) {
      const reply = this._parseOne();
      if (reply === null) {
        return;
      }
      const waiter = this.pending.shift();
      if (this.pending.length === 0) {
        this.socket.unref();
      }
      if (waiter !== undefined) {
        waiter.resolve(reply);
      }
    }
  }

  // One whole reply from the buffer, or null when more bytes are needed.
  _parseOne() {
    const buf = this.buffer;
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) {
      if (buf.length > MAX_HEAD) {
        this.socket.destroy(new RuntimeApiError('oversized reply head'));
      }
      return null;
    }
    const lines = buf.toString('latin1', 0, end).split(CRLF);
    const status = Number(lines[0].split(' ', 3)[1]);
    const headers = Object.create(null);
    for (let i = 1; i < lines.length; i++) {
      const colon = lines[i].indexOf(':');
      if (colon > 0) {
        headers[lines[i].slice(0, colon).trim().toLowerCase()] = lines[i].slice(colon + 1).trim();
      }
    }
    const length = Number(headers['content-length'] || 0);
    const start = end + 4;
    if (buf.length < start + length) {
      return null;
    }
    const body = buf.subarray(start, start + length);
    this.buffer = buf.length > start + length ? buf.subarray(start + length) : null;
    return { status, headers, body };
  }

  // The next event: { body (Buffer), headers (lower-case names) }.
  async next() {
    this._write(`GET ${API}/invocation/next HTTP/1.1${CRLF}${this.hostHeader}${CRLF}`);
    const reply = await this._expect();
    if (reply.status !== 200) {
      throw new RuntimeApiError(`next: ${reply.status} ${reply.body.toString()}`);
    }
    return reply;
  }

  _post(path, body, extraHeaders) {
    const payload = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    this._write(
      `POST ${path} HTTP/1.1${CRLF}${this.hostHeader}Content-Type: application/json${CRLF}` +
        `${extraHeaders}Content-Length: ${payload.length}${CRLF}${CRLF}`,
    );
    this._write(payload);
    return this._expect();
  }

  postResponse(id, body) {
    return this._post(`${API}/invocation/${encodeURIComponent(id)}/response`, body, '');
  }

  postError(id, errorType, body) {
    return this._post(`${API}/invocation/${encodeURIComponent(id)}/error`, body, errorTypeHeader(errorType));
  }

  postInitError(errorType, body) {
    return this._post(`${API}/init/error`, body, errorTypeHeader(errorType));
  }

  // A call's answer ({response} or {errorType, error}) and the `next`
  // that follows it, in one write; resolves to that next event.
  answerThenNext(id, answer) {
    const posted =
      answer.errorType === undefined ? this.postResponse(id, answer.response) : this.postError(id, answer.errorType, answer.error);
    // A refusal (413 for an oversized response) has told the caller
    // already; the runtime goes on either way.
    posted.catch(() => undefined);
    return this.next();
  }

  // A streamed answer: the head now, chunks as they come, end() with
  // optional error trailers. Returns the reply's promise from end().
  openStream(id, contentType) {
    this._write(
      `POST ${API}/invocation/${encodeURIComponent(id)}/response HTTP/1.1${CRLF}${this.hostHeader}` +
        `Lambda-Runtime-Function-Response-Mode: streaming${CRLF}Transfer-Encoding: chunked${CRLF}` +
        `Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body${CRLF}` +
        `Content-Type: ${headerValue(contentType)}${CRLF}${CRLF}`,
    );
    const reply = this._expect();
    return {
      reply,
      write: (chunk, onFlushed) => {
        if (chunk.length === 0) {
          process.nextTick(onFlushed);
          return true;
        }
        this._write(`${chunk.length.toString(16)}${CRLF}`);
        this._write(chunk);
        return this._write(CRLF, onFlushed);
      },
      end: (trailers) => {
        let tail = `0${CRLF}`;
        for (const [name, value] of trailers || []) {
          tail += `${name}: ${headerValue(value)}${CRLF}`;
        }
        this._write(tail + CRLF);
        return reply;
      },
    };
  }
}

function headerValue(value) {
  return String(value).replace(/[\r\n\0]/g, ' ');
}

function errorTypeHeader(errorType) {
  return errorType ? `Lambda-Runtime-Function-Error-Type: ${headerValue(errorType)}${CRLF}` : '';
}

module.exports = { RuntimeApi, RuntimeApiError };
