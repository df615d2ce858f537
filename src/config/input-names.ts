/**
 * Names of the action's inputs and outputs, in one place (they match action.yml). Renamed
 * inputs keep working under their old names through the alias table (input-aliases.ts).
 */
export const Inputs = {
  Hosts: 'hosts',
  User: 'user',
  Become: 'become',
  Port: 'port',
  SshKey: 'ssh-key',
  SshKeyPassphrase: 'ssh-key-passphrase',
  KnownHosts: 'known-hosts',
  InsecureSkipHostKeyCheck: 'insecure-skip-host-key-check',
  JumpHost: 'jump-host',
  JumpSshKey: 'jump-ssh-key',
  ConnectTimeout: 'connect-timeout',
  CommandTimeout: 'command-timeout',
  AppDir: 'app-dir',
  Source: 'source',
  Release: 'release',
  KeepReleases: 'keep-releases',
  SharedPaths: 'shared-paths',
  InstallCommand: 'install-command',
  MigrateCommand: 'migrate-command',
  MigrateHost: 'migrate-host',
  MigrationLint: 'migration-lint',
  MigrationLockTimeout: 'migration-lock-timeout',
  Server: 'server',
  Strategy: 'strategy',
  Pidfile: 'pidfile',
  Service: 'service',
  ServerLog: 'server-log',
  WsgiApp: 'wsgi-app',
  Python: 'python',
  ReloadTimeout: 'reload-timeout',
  HealthUrl: 'health-url',
  HealthHost: 'health-host',
  HealthTimeout: 'health-timeout',
  HealthInterval: 'health-interval',
  HealthSuccesses: 'health-successes',
  ExpectVersion: 'expect-version',
  Rollback: 'rollback',
  Mode: 'mode',
  IfCurrent: 'if-current',
  LockWait: 'lock-wait',
  ForceUnlock: 'force-unlock',
  MaxParallel: 'max-parallel',
  Canary: 'canary',
  CanaryWait: 'canary-wait',
  BatchSize: 'batch-size',
  BatchWait: 'batch-wait',
  MaxFailedHosts: 'max-failed-hosts',
  Lb: 'lb',
  LbHost: 'lb-host',
  LbSocket: 'lb-socket',
  LbBackend: 'lb-backend',
  LbServers: 'lb-servers',
  LbDrain: 'lb-drain',
  LbDrainTimeout: 'lb-drain-timeout',
  LbTrafficGateWindow: 'lb-traffic-gate-window',
  LbTrafficGateMax5xxRate: 'lb-traffic-gate-max-5xx-rate',
  LbTrafficGateLatencyFactor: 'lb-traffic-gate-latency-factor',
  LbCanaryWeight: 'lb-canary-weight',
} as const;

export const Outputs = {
  Status: 'status',
  Release: 'release',
  PreviousRelease: 'previous-release',
  RollbackTarget: 'rollback-target',
  Hosts: 'hosts',
  Duration: 'duration',
  FailedHosts: 'failed-hosts',
  Message: 'message',
  MigrationRevisionBefore: 'migration-revision-before',
  MigrationRevisionAfter: 'migration-revision-after',
  MigrationFindings: 'migration-findings',
} as const;

/**
 * What the main step saves (core.saveState) for the post step: never a secret, since inputs are
 * readable again in the post step.
 */
export const State = {
  /** Set by the main step at its start: the next run of dist/index.js is the post step. */
  IsPost: 'isPost',
  /** This run's deploy lock token: the post step releases only locks it owns. */
  Token: 'token',
  /** JSON `{host: 'locked' | 'reloading' | 'done'}`: the hosts this run locked and how far each got. */
  Phases: 'phases',
  /** 'true' once the main step ended on its own (its cleanup ran): the post step does nothing on the hosts. */
  Finished: 'finished',
  /** JSON HeldServers: what this run drained on HAProxy and has not set ready again; the post step does. */
  LbHeld: 'lbHeld',
} as const;
