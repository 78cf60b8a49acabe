/** Reference linear-attn ops: filled in by the family work. */
export {};
