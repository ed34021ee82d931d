// Preloaded with `node -r` into servers that have no host option (server-everything
// listens on every interface): every TCP listen given only a port binds to 127.0.0.1.
const net = require("net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const port = args[0];
  if ((typeof port === "number" || /^\d+$/.test(String(port))) && typeof args[1] !== "string") {
    args = [Number(port), "127.0.0.1", ...args.slice(1)];
  }
  return listen.apply(this, args);
};
