// Sends an order and the buyer's cancel to the after-sales worker, from Node.js.
//
//   npm ci && node send.js [ORDER_ID]
//
// The worker takes Celery tasks (protocol 2, JSON) with one positional argument, the
// message, on the queue aftersales.inbound; celery-node speaks exactly that. The Redis
// URL comes from AFTERSALES_REDIS_URL, else from ../../var/redis.url (`aftersales run`).
"use strict";

const fs = require("fs");
const path = require("path");
const crypto = require("crypto");
const celery = require("celery-node");

function redisUrl() {
  if (process.env.AFTERSALES_REDIS_URL) return process.env.AFTERSALES_REDIS_URL;
  const file = path.join(__dirname, "..", "..", "var", "redis.url");
  return fs.existsSync(file) ? fs.readFileSync(file, "utf8").trim() : "redis://127.0.0.1:6379/0";
}

// Event time: when it happened at the source, RFC 3339 with an offset.
const minutesAgo = (minutes) => new Date(Date.now() - minutes * 60_000).toISOString();

function message(type, orderId, occurredAt, fields = {}) {
  return { message_id: crypto.randomUUID(), type, order_id: orderId, occurred_at: occurredAt, ...fields };
}

async function main() {
  const orderId = process.argv[2] || `node-${crypto.randomUUID().slice(0, 8)}`;
  const url = redisUrl();
  // Results are never read (the worker keeps none); the backend argument is required.
  const client = celery.createClient(url, url, "aftersales.inbound");
  await client.isReady();

  const placed = message("order.placed", orderId, minutesAgo(10), {
    marketplace: "US",
    seller_id: "seller-1",
    buyer_id: "buyer-1",
    payment_method: "prepaid",
    pricing: "regular",
    currency: "USD",
    shipping_fee: "4.99", // money is always a decimal string, never a float
    items: [{ sku: "SKU-1", quantity: 1, unit_price: "19.99" }],
  });
  const cancel = message("buyer.cancel_requested", orderId, minutesAgo(1), { reason: "changed my mind" });

  // Arguments and keyword arguments both: celery-node sends a missing one as null, which
  // Celery refuses ("Task keyword arguments is not a mapping").
  client.sendTask("aftersales.order_event", [placed], {});
  client.sendTask("aftersales.buyer_action", [cancel], {});

  // sendTask publishes once the connection is ready, on a later tick: let it, then close.
  await new Promise((resolve) => setImmediate(resolve));
  await client.disconnect();
  console.log(`sent order.placed and buyer.cancel_requested for ${orderId}`);
  console.log(`see it: aftersales order ${orderId}`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
