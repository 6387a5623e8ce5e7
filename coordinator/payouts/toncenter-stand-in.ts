/**
 * Test support: a local stand-in for toncenter's JSON-RPC endpoint (API v2) on a real socket.
 * Tests say what each method answers (a result, an HTTP error, or silence) and read back the
 * calls `@ton/ton`'s TonClient made; `transactionsPage` answers `getTransactions` from
 * transactions recorded on the sandbox chain, as toncenter pages them.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Transaction } from '@ton/core';

export interface RpcCall {
  method: string;
  params: Record<string, unknown>;
  apiKey: string | undefined;
  body: Record<string, unknown>;
}

/** What the stand-in answers per JSON-RPC method: a result, an HTTP error, or silence. */
export type Reply = { result: unknown } | { status: number; body: unknown } | 'hang';
export type Params = Record<string, unknown>;

export interface TonCenterStandIn {
  /** The JSON-RPC URL to give TonClient. */
  endpoint: string;
  /** Every call received, in order. */
  calls: RpcCall[];
  /** What each method answers; tests replace it. */
  replies: Record<string, Reply | ((params: Params) => Reply)>;
  close(): Promise<void>;
}

export async function startTonCenterStandIn(): Promise<TonCenterStandIn> {
  const standIn = { calls: [] as RpcCall[], replies: {} as TonCenterStandIn['replies'] };
  const server: Server = createServer((req, res) => {
    void readJson(req).then((body) => {
      const method = String(body['method']);
      const params = body['params'] as Params;
      standIn.calls.push({ method, params, apiKey: header(req, 'x-api-key'), body });
      const answer = standIn.replies[method] ?? { status: 404, body: { ok: false, error: `no reply for ${method}` } };
      let reply: Reply;
      try {
        reply = typeof answer === 'function' ? answer(params) : answer;
      } catch (err) {
        reply = { status: 500, body: { ok: false, error: String(err) } };
      }
      if (reply === 'hang') return;
      const [status, payload] = 'result' in reply ? [200, { ok: true, result: reply.result }] : [reply.status, reply.body];
      // One request per connection: a kept-alive socket the server times out while the test
      // works on the sandbox would reset the client's next request.
      res.writeHead(status, { 'content-type': 'application/json', connection: 'close' }).end(JSON.stringify(payload));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return Object.assign(standIn, {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v2/jsonRPC`,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  });
}

/**
 * toncenter's getTransactions: newest first, from the transaction (lt, hash hex) inclusive when
 * given, at most `limit`, stopping at `to_lt`; each with its BoC in `data`.
 */
export function transactionsPage(newestFirst: readonly Transaction[], params: Params) {
  const start =
    params['lt'] === undefined
      ? 0
      : newestFirst.findIndex((t) => t.lt.toString() === params['lt'] && t.hash().toString('hex') === params['hash']);
  if (start < 0) throw new Error('no such transaction');
  const rawToLt = params['to_lt'];
  const toLt = BigInt(typeof rawToLt === 'string' || typeof rawToLt === 'number' ? rawToLt : 0);
  const page = newestFirst.slice(start, start + Number(params['limit']));
  const end = page.findIndex((t) => t.lt <= toLt);
  return (end < 0 ? page : page.slice(0, end)).map((t) => ({
    data: t.raw.toBoc().toString('base64'),
    utime: t.now,
    transaction_id: { lt: t.lt.toString(), hash: t.hash().toString('base64') },
    fee: t.totalFees.coins.toString(),
    storage_fee: '0',
    other_fee: '0',
    out_msgs: [],
  }));
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
}
