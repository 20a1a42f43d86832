/** Docker's 8-byte stream frame for non-TTY output: [type, 0, 0, 0, length (u32 BE)] + payload. */
export const enum StreamType {
  Stdin = 0,
  Stdout = 1,
  Stderr = 2,
  SystemErr = 3,
}

export function frame(type: StreamType, payload: Buffer): Buffer {
  const header = Buffer.alloc(8);
  header[0] = type;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}
