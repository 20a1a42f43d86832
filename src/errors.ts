// The error family services throw; api/ renders each once with Docker's status code.

export class BerthError extends Error {
  readonly statusCode: number = 500;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

export class InvalidParameterError extends BerthError {
  override readonly statusCode = 400;
}

export class UnauthorizedError extends BerthError {
  override readonly statusCode = 401;
}

export class ForbiddenError extends BerthError {
  override readonly statusCode = 403;
}

export class NotFoundError extends BerthError {
  override readonly statusCode = 404;
}

export class ConflictError extends BerthError {
  override readonly statusCode = 409;
}

export class NotImplementedError extends BerthError {
  override readonly statusCode = 501;
}

export class UnavailableError extends BerthError {
  override readonly statusCode = 503;
}

/** A stable string for logging any thrown value. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
