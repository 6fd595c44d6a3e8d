/**
 * A scripted fake QMP server on a real unix socket, for unit tests of the monitor. A test
 * accepts the client's connection and then decides byte by byte what "QEMU" sends.
 */

/** A standard greeting line, as QEMU 7.2 sends it. */
export const GREETING =
  '{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, "capabilities": ["oob"]}}';

/** An event line with the given name and data. */
export function eventLine(event: string, data?: Record<string, unknown>): string {
  return JSON.stringify({
    event,
    ...(data === undefined ? {} : { data }),
    timestamp: { seconds: 1700000000, microseconds: 1 },
  });
}

/** A request as the fake received it. */
export interface FakeRequest {
  execute: string;
  arguments?: Record<string, unknown>;
  id: unknown;
}

/** A listening fake server in its own temporary directory. */
export class FakeQmpServer {
  /** The socket path to connect to. */
  readonly path: string;
  #dir: string;
  #listener: Deno.Listener;

  private constructor(dir: string, listener: Deno.Listener) {
    this.#dir = dir;
    this.path = `${dir}/qmp.sock`;
    this.#listener = listener;
  }

  /** Listens on a fresh socket in a new temporary directory. */
  static async start(): Promise<FakeQmpServer> {
    const dir = await Deno.makeTempDir({ prefix: "kaos-qmp-test-" });
    const listener = Deno.listen({ transport: "unix", path: `${dir}/qmp.sock` });
    return new FakeQmpServer(dir, listener);
  }

  /** Waits for the next client. */
  async accept(): Promise<FakePeer> {
    return new FakePeer(await this.#listener.accept());
  }

  /** Stops listening and removes the directory. */
  async close(): Promise<void> {
    this.#listener.close();
    await Deno.remove(this.#dir, { recursive: true });
  }
}

/** One accepted client connection, driven by the test. */
export class FakePeer {
  #conn: Deno.Conn;
  #buffer = "";
  #decoder = new TextDecoder();
  #closed = false;

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  /** Sends raw text as is (no line ending added). */
  async send(text: string): Promise<void> {
    const bytes = new TextEncoder().encode(text);
    let offset = 0;
    while (offset < bytes.length) offset += await this.#conn.write(bytes.subarray(offset));
  }

  /** Sends raw text one byte per write, with a pause so each byte is its own chunk. */
  async sendByteByByte(text: string): Promise<void> {
    for (const byte of new TextEncoder().encode(text)) {
      await this.#conn.write(new Uint8Array([byte]));
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  /** Sends one message as a CRLF-terminated line, like QEMU. */
  sendLine(line: string): Promise<void> {
    return this.send(`${line}\r\n`);
  }

  /** Sends a success reply to a request. */
  reply(request: FakeRequest, value: unknown = {}): Promise<void> {
    return this.sendLine(JSON.stringify({ return: value, id: request.id }));
  }

  /** Sends an error reply to a request. */
  replyError(request: FakeRequest, errorClass: string, desc: string): Promise<void> {
    return this.sendLine(JSON.stringify({ error: { class: errorClass, desc }, id: request.id }));
  }

  /** Reads the client's next request line. */
  async request(): Promise<FakeRequest> {
    const buf = new Uint8Array(4096);
    for (;;) {
      const nl = this.#buffer.indexOf("\n");
      if (nl >= 0) {
        const line = this.#buffer.slice(0, nl);
        this.#buffer = this.#buffer.slice(nl + 1);
        return JSON.parse(line);
      }
      const n = await this.#conn.read(buf);
      if (n === null) throw new Error("client closed the connection");
      this.#buffer += this.#decoder.decode(buf.subarray(0, n), { stream: true });
    }
  }

  /** Reads the next request and checks it is the given command. */
  async expect(command: string): Promise<FakeRequest> {
    const req = await this.request();
    if (req.execute !== command) {
      throw new Error(`fake QMP server expected ${command}, got ${JSON.stringify(req)}`);
    }
    return req;
  }

  /** Sends the greeting and answers qmp_capabilities: what every connect() needs. */
  async handshake(): Promise<void> {
    await this.sendLine(GREETING);
    await this.reply(await this.expect("qmp_capabilities"));
  }

  /** Waits until the client closes its side. */
  async waitClientClose(): Promise<void> {
    const buf = new Uint8Array(4096);
    while ((await this.#conn.read(buf)) !== null) { /* discard */ }
  }

  /** Closes the connection (like QEMU exiting). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#conn.close();
  }
}
