/** The `webattn` command line: commands, flags, help texts and examples. */
import { DTYPES, type Gpu, type NodeBackend, TIERS, type Tier } from '@webattn/core';
import { Command, Option } from 'commander';
import { BACKENDS, openGpu } from './adapter.js';
import { type BenchFlags, benchCommand } from './commands/bench.js';
import { infoReport } from './commands/info.js';
import { runCommand } from './commands/run.js';
import { verifyCommand } from './commands/verify.js';
import { parseConfig, parseCount, parsePositiveInt, parseSizes } from './options.js';
import { RUN_OPS } from './run/ops.js';
import { SUITES, type Suite } from './verify/check.js';
import { VERSION } from './version.js';

/** Where the CLI writes; tests capture both. */
export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
}

const backendOption = () =>
  new Option('--backend <backend>', 'Dawn backend to use in Node (null compiles without running)').choices(
    BACKENDS,
  );
const tierOption = () => new Option('--tier <tier>', 'only this kernel tier').choices(TIERS);

/**
 * Builds the program. `exit` receives each command's status; commands open the device, run, and
 * always destroy it (a live dawn.node device keeps the process alive).
 */
export function buildProgram(io: Io, exit: (code: number) => void): Command {
  const program = new Command('webattn')
    .description(
      'WebGPU attention kernels: check them against the CPU reference, benchmark them, run them on PyTorch tensors.',
    )
    .version(VERSION)
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

  const withGpu = async (
    backend: NodeBackend | undefined,
    fast: boolean,
    body: (gpu: Gpu) => Promise<number>,
  ) => {
    const gpu = await openGpu({ ...(backend && { backend }) }, fast);
    try {
      exit(await body(gpu));
    } finally {
      gpu.destroy();
    }
  };

  program
    .command('info')
    .description('adapter, features, tiers, subgroup sizes, matrix shapes and the limits that matter')
    .addOption(backendOption())
    .addHelpText('after', '\nExamples:\n  webattn info\n  webattn info --backend null')
    .action((opts: { backend?: NodeBackend }) =>
      withGpu(opts.backend, false, async (gpu) => {
        io.out(`${infoReport(gpu)}\n`);
        return 0;
      }),
    );

  program
    .command('verify')
    .description(
      'run every kernel variant this adapter supports on small random inputs against @webattn/reference',
    )
    .addArgument(
      new Command()
        .createArgument('[suite]', 'what to verify')
        .choices([...SUITES, 'all'])
        .default('all'),
    )
    .addOption(tierOption())
    .addOption(backendOption())
    .addHelpText(
      'after',
      '\nExits with status 1 if any check fails.\n\nExamples:\n  webattn verify\n  webattn verify core --tier subgroups',
    )
    .action((suite: Suite | 'all', opts: { tier?: Tier; backend?: NodeBackend }) =>
      withGpu(opts.backend, false, (gpu) =>
        verifyCommand(gpu, suite, opts.tier, (line) => io.out(`${line}\n`)),
      ),
    );

  program
    .command('bench')
    .description(
      'benchmark tables: rows are sizes, columns implementations (ms), ratios, TFLOPS and % of measured ceilings',
    )
    .addArgument(new Command().createArgument('<suite>', 'what to benchmark').choices([...SUITES, 'all']))
    .option(
      '--sizes <list>',
      'comma-separated sizes (default: per suite, scaled down on CPU adapters)',
      parseSizes,
    )
    .addOption(new Option('--dtype <dtype>', 'storage dtype of the kernels to time').choices(DTYPES))
    .addOption(tierOption())
    .option('--iters <n>', 'timed iterations per cell (default 10; 3 on CPU adapters)', parsePositiveInt)
    .option('--warmup <n>', 'untimed iterations first (default 3; 1 on CPU adapters)', parseCount)
    .option('--json <file>', 'also write the full results (every sample, adapter, ceilings) as JSON')
    .option('--svg <file>', 'also draw time against size per implementation (log scales) as SVG')
    .option('--torch <file>', 'merge PyTorch columns from scripts/torch_baseline.py output')
    .option('--no-progress', 'no progress bar on stderr')
    .addOption(backendOption())
    .addHelpText(
      'after',
      '\nExamples:\n  webattn bench core\n  webattn bench core --sizes 2048,4096 --dtype f16 --json out/bench.json --svg out/bench.svg\n  webattn bench all --torch torch.json',
    )
    .action((suite: Suite | 'all', opts: BenchFlags & { backend?: NodeBackend }) =>
      withGpu(opts.backend, true, async (gpu) => {
        await benchCommand(
          gpu,
          suite,
          { ...opts, progress: opts.progress && process.stderr.isTTY === true },
          io.out,
          (t) => io.err(`${t}\n`),
        );
        return 0;
      }),
    );

  const ops = [...RUN_OPS.values()]
    .map(
      (op) =>
        `  ${op.name}: inputs ${[...op.inputs.required, ...op.inputs.optional.map((i) => `[${i}]`)].join(', ')}; config ${op.configKeys.join(', ') || 'none'}; writes ${op.outputs}`,
    )
    .join('\n');
  program
    .command('run')
    .description(
      'run one op on tensors from a safetensors file (e.g. saved from PyTorch) and write the results',
    )
    .argument('<op>', `the op: ${[...RUN_OPS.keys()].join(', ')}`)
    .requiredOption('--in <file>', 'input .safetensors')
    .requiredOption('--out <file>', 'output .safetensors')
    .option('--config <json>', 'op configuration as a JSON object', parseConfig, {})
    .addOption(backendOption())
    .addHelpText(
      'after',
      `\nOps:\n${ops}\n\nExample:\n  webattn run matmul --in ab.safetensors --out c.safetensors --config '{"transposeB": true}'`,
    )
    .action(
      (
        op: string,
        opts: { in: string; out: string; config: Record<string, unknown>; backend?: NodeBackend },
      ) =>
        withGpu(opts.backend, false, async (gpu) => {
          for (const line of await runCommand(gpu, op, opts.in, opts.out, opts.config))
            io.out(`wrote ${line}\n`);
          return 0;
        }),
    );

  return program;
}

/** Parses `argv` and runs; resolves to the exit status. Errors are printed, never thrown. */
export async function main(argv: readonly string[], io: Io): Promise<number> {
  let status = 0;
  const program = buildProgram(io, (code) => {
    status = code;
  });
  try {
    await program.parseAsync(argv as string[], { from: 'user' });
    return status;
  } catch (error) {
    const e = error as { code?: string; exitCode?: number; message?: string };
    if (typeof e.code === 'string' && e.code.startsWith('commander.')) {
      // Commander has already printed help or the usage error.
      return e.code === 'commander.helpDisplayed' || e.code === 'commander.version' ? 0 : (e.exitCode ?? 1);
    }
    io.err(`webattn: ${e.message ?? String(error)}\n`);
    return 1;
  }
}
