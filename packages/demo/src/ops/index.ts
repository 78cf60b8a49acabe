/** Every op the demo runs, one per family's forward, in the order of the table. */
import { flashOp } from './flash.js';
import { lightningOp } from './lightning.js';
import { maskedOp } from './masked.js';
import { mlaOp } from './mla.js';
import { nsaOp } from './nsa.js';
import type { DemoOp } from './op.js';

/** The demo's ops. */
export const DEMO_OPS: readonly DemoOp[] = [flashOp, nsaOp, mlaOp, lightningOp, maskedOp];
