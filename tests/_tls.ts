/**
 * A throw-away certificate authority and a server certificate for 127.0.0.1, made with openssl,
 * for tests that need https on loopback. A process trusts the CA through `DENO_CERT=<caFile>`.
 */
import { run } from "./_util.ts";

/** PEM texts and the CA's file path. */
export interface TestTls {
  /** The CA certificate file (give it to kattach as DENO_CERT). */
  caFile: string;
  /** The server certificate and key (PEM), for Deno.serve. */
  cert: string;
  key: string;
}

/** Writes a CA and a 127.0.0.1 server certificate signed by it under `dir`. */
export async function makeTestTls(dir: string): Promise<TestTls> {
  const ok = async (argv: string[]) => {
    const r = await run(argv);
    if (r.code !== 0) throw new Error(`${argv.join(" ")} failed: ${r.stderr}`);
  };
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await ok([
    "openssl",
    "req",
    "-x509",
    ...ec,
    "-keyout",
    `${dir}/ca.key`,
    "-out",
    `${dir}/ca.pem`,
    "-days",
    "2",
    "-subj",
    "/CN=kaos-test-ca",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign",
  ]);
  await ok([
    "openssl",
    "req",
    ...ec,
    "-keyout",
    `${dir}/srv.key`,
    "-out",
    `${dir}/srv.csr`,
    "-subj",
    "/CN=127.0.0.1",
  ]);
  await Deno.writeTextFile(
    `${dir}/srv.ext`,
    "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
  );
  await ok([
    "openssl",
    "x509",
    "-req",
    "-in",
    `${dir}/srv.csr`,
    "-CA",
    `${dir}/ca.pem`,
    "-CAkey",
    `${dir}/ca.key`,
    "-CAcreateserial",
    "-out",
    `${dir}/srv.pem`,
    "-days",
    "2",
    "-extfile",
    `${dir}/srv.ext`,
  ]);
  return {
    caFile: `${dir}/ca.pem`,
    cert: await Deno.readTextFile(`${dir}/srv.pem`),
    key: await Deno.readTextFile(`${dir}/srv.key`),
  };
}
