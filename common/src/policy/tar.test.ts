import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { readTar, readTarGz, TarError } from "./tar.js";

const run = promisify(execFile);

describe("readTar", () => {
  let dir: string;
  const longDir = `${"d".repeat(60)}/${"e".repeat(60)}`;
  const longName = `${longDir}/${"f".repeat(90)}.txt`;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "tar-test-"));
    const src = join(dir, "src");
    await mkdir(join(src, "sub"), { recursive: true });
    await mkdir(join(src, longDir), { recursive: true });
    await writeFile(join(src, "a.txt"), "hello");
    await writeFile(join(src, "sub", "b.bin"), Buffer.alloc(1500, 7));
    await writeFile(join(src, "empty"), "");
    await writeFile(join(src, longName), "long");
    for (const format of ["ustar", "gnu", "pax"]) {
      const files = format === "ustar" ? ["a.txt", "sub/b.bin", "empty"] : ["."];
      await run("tar", [
        `--format=${format}`,
        "-cf",
        join(dir, `${format}.tar`),
        "-C",
        src,
        ...files,
      ]);
    }
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("reads regular files of a ustar archive", async () => {
    const files = readTar(await readFile(join(dir, "ustar.tar")));
    assert.deepEqual([...files.keys()].sort(), ["a.txt", "empty", "sub/b.bin"]);
    assert.equal(Buffer.from(files.get("a.txt") ?? []).toString(), "hello");
    assert.equal(files.get("sub/b.bin")?.byteLength, 1500);
    assert.equal(files.get("sub/b.bin")?.[1499], 7);
    assert.equal(files.get("empty")?.byteLength, 0);
  });

  it("reads GNU long names and PAX paths, stripping ./", async () => {
    for (const format of ["gnu", "pax"]) {
      const files = readTar(await readFile(join(dir, `${format}.tar`)));
      assert.equal(Buffer.from(files.get(longName) ?? []).toString(), "long", format);
      assert.equal(Buffer.from(files.get("a.txt") ?? []).toString(), "hello", format);
    }
  });

  it("reads a gzipped archive", async () => {
    const files = readTarGz(gzipSync(await readFile(join(dir, "ustar.tar"))));
    assert.equal(Buffer.from(files.get("a.txt") ?? []).toString(), "hello");
  });

  it("rejects a truncated archive", async () => {
    const tar = await readFile(join(dir, "ustar.tar"));
    // Cut inside the body of sub/b.bin (its header is after a.txt's two blocks... cut mid-way).
    assert.throws(() => readTar(tar.subarray(0, 512 * 4 + 100)), TarError);
  });

  it("rejects a header with a bad checksum", async () => {
    const tar = Buffer.from(await readFile(join(dir, "ustar.tar")));
    tar[0] = (tar[0] ?? 0) ^ 0xff;
    assert.throws(() => readTar(tar), /bad header checksum/);
  });

  it("rejects data that is not gzip", () => {
    assert.throws(() => readTarGz(Buffer.from("plain text")), /not a valid gzip stream/);
  });

  it("rejects an empty or non-tar input", () => {
    assert.throws(() => readTar(Buffer.alloc(100, 1)), TarError);
  });

  it("rejects archives over maxBytes", async () => {
    const tar = await readFile(join(dir, "ustar.tar"));
    assert.throws(() => readTar(tar, { maxBytes: 1024 }), /larger than allowed/);
    assert.throws(() => readTarGz(gzipSync(tar), { maxBytes: 1024 }), TarError);
  });
});
