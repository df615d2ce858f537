/**
 * Typed errors. Each carries the host it concerns (when there is one) and a message a person
 * can act on; main.ts turns whatever reaches it into one core.setFailed.
 */
export class DeployError extends Error {
  constructor(
    message: string,
    readonly host?: string,
  ) {
    super(host ? `[${host}] ${message}` : message);
    this.name = new.target.name;
  }
}

/** An input value is missing or malformed; raised before anything connects. */
export class InputError extends DeployError {
  constructor(
    readonly input: string,
    message: string,
  ) {
    super(`Invalid input '${input}': ${message}`);
  }
}

/** The host offered a key that known-hosts does not pin. */
export class HostKeyError extends DeployError {}

/**
 * The SSH connection to a host is gone (reset, keepalive timeout) and could not be opened
 * again. Whatever command was running there may or may not have finished.
 */
export class HostUnreachableError extends DeployError {}

/**
 * The jump host (bastion) cannot be reached, or would not forward to a host. Carries the
 * bastion's label, or the host's when only that host's forward failed; the message names both.
 */
export class JumpHostError extends HostUnreachableError {}

/** The filesystem holding `path` on the host has no room for what had to be written there. */
export class DiskFullError extends DeployError {
  constructor(
    host: string,
    readonly path: string,
    readonly mountedOn: string,
    readonly availableBytes: number,
    readonly neededBytes: number,
  ) {
    super(
      `the disk holding ${path} (the filesystem mounted on ${mountedOn}) is full: ${availableBytes} bytes free, ${neededBytes} bytes needed. Free space on the host (old releases, logs) and deploy again.`,
      host,
    );
  }
}

/** A remote command exited non-zero. */
export class RemoteCommandError extends DeployError {
  constructor(
    readonly purpose: string,
    host: string,
    readonly code: number,
    readonly stderrTail: string,
  ) {
    super(`${purpose} failed (exit ${code})${stderrTail ? `: ${stderrTail}` : ''}`, host);
  }
}

/** Another run holds the deploy lock of a host. */
export class LockHeldError extends DeployError {}

/** The pid in the pidfile is not a live master of this app, or the server is in a state we won't touch. */
export class MasterCheckError extends DeployError {}

/** The new release cannot be loaded by the server's own interpreter. */
export class PreflightError extends DeployError {}

/** The server did not reach the expected state (new workers, new master) in time. */
export class ReloadError extends DeployError {}

/** The readiness gate did not pass in time. */
export class HealthGateError extends DeployError {}

/** Text of any thrown value, for non-Error throws too. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return typeof error === 'string' ? error : JSON.stringify(error);
}

/** The run was cancelled (SIGINT/SIGTERM from the runner): forward work stops here. */
export class CancelledError extends DeployError {}

/**
 * A host was left half-changed by a run that died (no cancel handler, no post step) in a
 * state the action will not repair by itself; the message names the state and the fix.
 */
export class LeftoverStateError extends DeployError {}
