/**
 * @webattn/bench: the `webattn` CLI (bench tables and plots, verify, run, info) and its pieces, for
 * embedding in other tools.
 * @packageDocumentation
 */
export { adapterLine, type DeviceOptions, isCpuAdapter, openGpu } from './adapter.js';
export { reportSvg } from './bench/svg.js';
export { hostTimeMarkdown, reportMarkdown, throughputMarkdown, timingMarkdown } from './bench/table.js';
export type { BenchReport, BenchTable, Cell, Implementation, PreparedRun, TableSpec } from './bench/types.js';
export { type BenchFlags, benchCommand, CPU_BANNER } from './commands/bench.js';
export { infoReport } from './commands/info.js';
export { runCommand } from './commands/run.js';
export { verifyCommand } from './commands/verify.js';
export { buildProgram, type Io, main } from './program.js';
export { type OpOutput, RUN_OPS, type RunOp } from './run/ops.js';
export { type Check, type CheckLine, SUITES, type Suite } from './verify/check.js';
export { coreChecks, type KernelSource } from './verify/core-checks.js';
export { formatCheckLine, runChecks } from './verify/verify.js';
export { VERSION } from './version.js';
