/**
 * A value made on first use and shared by every caller after. A failure is not kept: the next call tries
 * again, so one transient error (a busy disk, a registry hiccup) does not disable the feature for the
 * daemon's life.
 */
export function onceUntilFailure<T>(make: () => Promise<T>): () => Promise<T> {
  let made: Promise<T> | undefined;
  return () => {
    made ??= make().catch((e: unknown) => {
      made = undefined;
      throw e;
    });
    return made;
  };
}
