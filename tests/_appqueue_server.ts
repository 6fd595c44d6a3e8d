/**
 * A real AppQueue HTTP server for tests (Deno.serve on 127.0.0.1): serves queue directories
 * built by appqueue/publish.ts under `/<queue>/`, honours `Range: bytes=N-`, checks the
 * subscription header where asked, records every request and injects faults on demand.
 */

/** A fault applied to the next matching requests. */
export interface Fault {
  /** Send only this many bytes of the body, then break the connection. */
  truncateAfter?: number;
  /** Flip one byte of the body (same length). */
  corrupt?: boolean;
  /** Serve these bytes instead. */
  body?: Uint8Array;
  /** How many requests the fault applies to (default 1). */
  times?: number;
}

/** One request the server saw. */
export interface SeenRequest {
  path: string;
  range: string | null;
  /** Whether a subscription header came along (its value is never recorded). */
  subscription: boolean;
  status: number;
}

/** The subscription header, as kattach sends it. */
const SUBSCRIPTION_HEADER = "x-kaos-subscription";

/** A running test AppQueue server. */
export class AppQueueServer {
  readonly requests: SeenRequest[] = [];
  #server: Deno.HttpServer<Deno.NetAddr>;
  #mounts = new Map<string, { dir: string; subscriptionKey?: string }>();
  #faults = new Map<string, Fault>();

  #scheme: string;

  private constructor(tls?: { cert: string; key: string }) {
    this.#scheme = tls ? "https" : "http";
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {}, ...tls },
      (req) => this.#handle(req),
    );
  }

  /** Starts a server on a free loopback port; https with a certificate and key (PEM). */
  static start(options: { tls?: { cert: string; key: string } } = {}): AppQueueServer {
    return new AppQueueServer(options.tls);
  }

  /** Serves `dir` under `/<queue>/`; with a key, requests without it get 403. */
  mount(queue: string, dir: string, options: { subscriptionKey?: string } = {}): void {
    this.#mounts.set(queue, { dir, subscriptionKey: options.subscriptionKey });
  }

  /** The base URL of a queue. */
  url(queue: string): string {
    return `${this.#scheme}://127.0.0.1:${this.#server.addr.port}/${queue}/`;
  }

  /** Applies a fault to requests for `path` (e.g. `/community/parts/<sha>`). */
  fault(path: string, fault: Fault): void {
    this.#faults.set(path, { times: 1, ...fault });
  }

  /** Requests whose path starts with a prefix. */
  seen(prefix: string): SeenRequest[] {
    return this.requests.filter((r) => r.path.startsWith(prefix));
  }

  /** Stops the server. */
  async close(): Promise<void> {
    await this.#server.shutdown();
  }

  async #handle(req: Request): Promise<Response> {
    const path = new URL(req.url).pathname;
    const range = req.headers.get("range");
    const given = req.headers.get(SUBSCRIPTION_HEADER);
    const log = (status: number) =>
      this.requests.push({ path, range, subscription: given !== null, status });
    const [, queue, ...restParts] = path.split("/");
    const rest = restParts.join("/");
    const mount = this.#mounts.get(queue);
    if (!mount || !(rest === "index.json" || /^parts\/[0-9a-f]{64}$/.test(rest))) {
      log(404);
      return new Response("not found\n", { status: 404 });
    }
    if (mount.subscriptionKey !== undefined && given !== mount.subscriptionKey) {
      log(403);
      return new Response("subscription required\n", { status: 403 });
    }
    let body: Uint8Array;
    try {
      body = await Deno.readFile(`${mount.dir}/${rest}`);
    } catch {
      log(404);
      return new Response("not found\n", { status: 404 });
    }
    const fault = this.#faults.get(path);
    if (fault) {
      if (--fault.times! <= 0) this.#faults.delete(path);
      if (fault.body) body = fault.body;
      if (fault.corrupt) {
        body = body.slice();
        body[Math.floor(body.length / 2)] ^= 0xff;
      }
    }
    let status = 200;
    const headers: Record<string, string> = { "content-type": "application/octet-stream" };
    const m = range && /^bytes=(\d+)-$/.exec(range);
    if (m && Number(m[1]) < body.length) {
      const from = Number(m[1]);
      headers["content-range"] = `bytes ${from}-${body.length - 1}/${body.length}`;
      body = body.subarray(from);
      status = 206;
    }
    log(status);
    if (fault?.truncateAfter !== undefined) {
      const part = body.subarray(0, fault.truncateAfter);
      const stream = new ReadableStream<Uint8Array>({
        async pull(c) {
          c.enqueue(part);
          await new Promise((r) => setTimeout(r, 50));
          c.error(new Error("connection broken by the test"));
        },
      });
      return new Response(stream, { status, headers });
    }
    return new Response(body as Uint8Array<ArrayBuffer>, { status, headers });
  }
}
