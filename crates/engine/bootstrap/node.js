// Stratus built-in Node.js runtime. Started as `node -e <this file>` with fds 3 (frames from the engine) and 4
// (frames to the engine); stdout and stderr are the invocation log. The frame protocol is documented in
// crates/engine/src/protocol.rs. Keep this file small and fast: it runs on every cold start.
'use strict';
(function stratusMain() {
  const fs = require('fs');
  const path = require('path');
  const RFD = 3, WFD = 4;
  const sleeper = new Int32Array(new SharedArrayBuffer(4));

  function writeAll(fd, buf) {
    let off = 0;
    while (off < buf.length) {
      try {
        off += fs.writeSync(fd, buf, off, buf.length - off);
      } catch (e) {
        if (e.code !== 'EAGAIN') throw e;
        Atomics.wait(sleeper, 0, 0, 1);
      }
    }
  }
  // User output goes straight to the log pipe, synchronously, so that it is in the pipe before the result frame.
  for (const [stream, fd] of [[process.stdout, 1], [process.stderr, 2]]) {
    stream.write = function (chunk, encoding, cb) {
      if (typeof encoding === 'function') { cb = encoding; encoding = undefined; }
      try {
        writeAll(fd, typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk);
      } catch (e) { /* the log is gone: nothing to tell */ }
      if (typeof cb === 'function') process.nextTick(cb);
      return true;
    };
  }

  let rbuf = Buffer.allocUnsafe(65536), rlen = 0;
  function readFrame() {
    for (;;) {
      if (rlen >= 5) {
        const n = rbuf.readUInt32BE(0);
        if (rlen >= 5 + n) {
          const kind = rbuf[4];
          const payload = Buffer.from(rbuf.subarray(5, 5 + n));
          rbuf.copy(rbuf, 0, 5 + n, rlen);
          rlen -= 5 + n;
          return [kind, payload];
        }
        if (rbuf.length < 5 + n) {
          const bigger = Buffer.allocUnsafe(5 + n);
          rbuf.copy(bigger, 0, 0, rlen);
          rbuf = bigger;
        }
      }
      let got;
      try {
        got = fs.readSync(RFD, rbuf, rlen, rbuf.length - rlen, null);
      } catch (e) {
        if (e.code === 'EAGAIN') { Atomics.wait(sleeper, 0, 0, 1); continue; }
        throw e;
      }
      if (got === 0) return [null, null];
      rlen += got;
    }
  }
  function send(kind, payload) {
    const body = Buffer.from(payload);
    const head = Buffer.allocUnsafe(5);
    head.writeUInt32BE(body.length, 0);
    head[4] = kind.charCodeAt(0);
    writeAll(WFD, Buffer.concat([head, body]));
  }
  function errorJson(status, type, message, stack) {
    return JSON.stringify({
      errorCode: status === 430 ? 1 : -1,
      errorMessage: message,
      errorType: type,
      stackTrace: stack || '',
      statusCode: status,
    });
  }
  function userError(err) {
    if (err instanceof Error) {
      return errorJson(430, err.name || 'Error', err.message, String(err.stack || ''));
    }
    let message;
    try { message = typeof err === 'string' ? err : JSON.stringify(err); } catch (e) { message = String(err); }
    return errorJson(430, 'Error', message === undefined ? String(err) : message, '');
  }
  function fatal(payload) {
    send('F', payload);
    process.exit(1);
  }

  const [ckind, cpayload] = readFrame();
  if (ckind !== 0x43) process.exit(2);
  const cfg = JSON.parse(cpayload.toString());

  const t0 = process.hrtime.bigint();
  const handler = process.env._HANDLER || '';
  const dot = handler.lastIndexOf('.');
  const modName = dot > 0 ? handler.slice(0, dot) : '';
  const fnName = dot > 0 ? handler.slice(dot + 1) : '';
  if (!modName || !fnName) {
    fatal(errorJson(437, 'HandlerNotFound', `Handler \`${handler}\` is not of the form file.function`));
  }
  const root = process.env.USER_CODE_ROOT || process.cwd();
  const file = path.resolve(root, modName);

  let fn = null;
  let current = null; // the invocation in progress: { finish }

  process.on('uncaughtException', (err) => {
    if (current) current.finish(err);
    else console.error('Uncaught exception outside an invocation:', err);
  });
  process.on('unhandledRejection', (err) => {
    if (current) current.finish(err);
    else console.error('Unhandled rejection outside an invocation:', err);
  });

  function ready(mod) {
    const f = mod && mod[fnName];
    if (typeof f !== 'function') {
      fatal(errorJson(437, 'HandlerNotFound',
        `Handler \`${handler}\` not found: module \`${modName}\` has no function \`${fnName}\``));
    }
    fn = f;
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    send('R', ms.toFixed(3));
    loop();
  }
  function loadFailed(err) {
    if (err && (err.code === 'MODULE_NOT_FOUND' || err.code === 'ERR_MODULE_NOT_FOUND') &&
        String(err.message).includes(file)) {
      fatal(errorJson(437, 'HandlerNotFound', `Handler \`${handler}\` not found: no module \`${modName}\` in the code`));
    }
    fatal(userError(err));
  }

  function invoke(payload) {
    const nl1 = payload.indexOf(10);
    const nl2 = payload.indexOf(10, nl1 + 1);
    const requestId = payload.toString('utf8', 0, nl1);
    const deadline = Number(payload.toString('utf8', nl1 + 1, nl2));
    const body = payload.toString('utf8', nl2 + 1);
    let done = false;
    const inv = {
      keepAlive: null,
      finish(err, result) {
        if (done) return;
        done = true;
        current = null;
        if (inv.keepAlive) clearInterval(inv.keepAlive);
        let kind, out;
        if (err !== null && err !== undefined) {
          kind = 'E'; out = userError(err);
        } else {
          try {
            out = JSON.stringify(result === undefined ? null : result);
            kind = 'O';
          } catch (e) {
            kind = 'E'; out = userError(e);
          }
        }
        send(kind, out);
        if (!syncPhase) setImmediate(loop);
      },
    };
    current = inv;
    const context = {
      callbackWaitsForEmptyEventLoop: false,
      memory_limit_in_mb: cfg.memory_limit_in_mb,
      time_limit_in_ms: cfg.time_limit_in_ms,
      request_id: requestId,
      environment: cfg.environment,
      environ: cfg.environment,
      function_version: cfg.function_version,
      function_name: cfg.function_name,
      namespace: cfg.namespace,
      tencentcloud_region: cfg.tencentcloud_region,
      tencentcloud_appid: cfg.tencentcloud_appid,
      tencentcloud_uin: cfg.tencentcloud_uin,
      getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    };
    let ret;
    try {
      const event = body.trim() ? JSON.parse(body) : {};
      ret = fn(event, context, (err, result) => inv.finish(err, result));
    } catch (e) {
      inv.finish(e);
      return false;
    }
    if (done) return false;
    if (ret && typeof ret.then === 'function') {
      ret.then((r) => inv.finish(null, r),
        (e) => inv.finish(e === undefined || e === null ? new Error('Promise rejected') : e));
      return true;
    }
    if (ret === undefined && fn.length >= 3) return true; // waits for the callback
    inv.finish(null, ret);
    return false;
  }

  let syncPhase = false;
  let looping = false;
  function loop() {
    if (looping) return;
    looping = true;
    try {
      for (;;) {
        const [kind, payload] = readFrame();
        if (kind === null) process.exit(0);
        if (kind !== 0x49) continue;
        syncPhase = true;
        const pending = invoke(payload);
        syncPhase = false;
        if (pending) {
          // Keep the process alive while the handler waits on something the event loop does not hold (a promise
          // that never settles runs into the timeout, as on SCF).
          if (current) current.keepAlive = setInterval(() => {}, 1 << 30);
          return;
        }
      }
    } finally {
      looping = false;
    }
  }

  if (fs.existsSync(file + '.mjs') && !fs.existsSync(file + '.js')) {
    import(require('url').pathToFileURL(file + '.mjs').href).then(ready, loadFailed);
  } else {
    let mod;
    try {
      mod = require(file);
    } catch (e) {
      loadFailed(e);
    }
    ready(mod);
  }
})();
