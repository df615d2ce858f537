import type { ReloadStep } from '../servers/server-driver.js';

/**
 * The phases a host goes through, in the order a deploy meets them. `reload` is the driver's
 * work up to its signal, `boot` the new generation coming up, `retire` the old workers leaving
 * (what the driver reports through its progress callback).
 */
export const PHASES = [
  'connect',
  'lock',
  'inspect',
  'stage',
  'check',
  'migrate',
  'switch',
  'reload',
  'boot',
  'retire',
  'gate',
  'commit',
  'revert',
  'canary-wait',
  'batch-wait',
] as const;
export type Phase = (typeof PHASES)[number];

/** One phase of one host: when it started, how long it took, whether it ended well. */
export interface PhaseSpan {
  phase: Phase;
  /** ISO 8601, UTC, with milliseconds. */
  start: string;
  seconds: number;
  ok: boolean;
}

/** Ends the running span and starts `phase` in the same `track` call (the driver's reload steps). */
export type NextPhase = (phase: Phase) => void;

/** The phase that starts when a server driver reports a reload step. */
const STEP_PHASE: Record<ReloadStep, Phase> = { signalled: 'boot', booted: 'retire' };

/** A driver's reload progress callback that moves a `track('reload')` call along its phases. */
export function reloadSteps(next: NextPhase): (step: ReloadStep) => void {
  return (step) => next(STEP_PHASE[step]);
}

/**
 * Records where a deploy's time went, per host and phase. Only the story's calls are timed, so
 * the spans never overlap within a host unless the story runs two phases of one host at once.
 */
export class Timeline {
  private readonly byHost = new Map<string, PhaseSpan[]>();

  constructor(private readonly now: () => number = Date.now) {}

  /**
   * Times `work` as `phase` of `host`; `work` may call `next` to end that span and start the
   * next phase. The span that is running when `work` throws is recorded as not ok.
   */
  async track<T>(host: string, phase: Phase, work: (next: NextPhase) => Promise<T>): Promise<T> {
    let current = { phase, started: this.now() };
    const next: NextPhase = (following) => {
      const at = this.now();
      this.record(host, current.phase, current.started, at, true);
      current = { phase: following, started: at };
    };
    try {
      const result = await work(next);
      this.record(host, current.phase, current.started, this.now(), true);
      return result;
    } catch (error) {
      this.record(host, current.phase, current.started, this.now(), false);
      throw error;
    }
  }

  /** The spans of `host`, in the order they started. */
  spans(host: string): PhaseSpan[] {
    return [...(this.byHost.get(host) ?? [])].sort((a, b) => a.start.localeCompare(b.start));
  }

  private record(host: string, phase: Phase, started: number, ended: number, ok: boolean): void {
    const spans = this.byHost.get(host) ?? [];
    spans.push({ phase, start: new Date(started).toISOString(), seconds: Math.round(ended - started) / 1000, ok });
    this.byHost.set(host, spans);
  }
}
