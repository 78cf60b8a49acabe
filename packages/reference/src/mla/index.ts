/** Reference mla ops: filled in by the family work. */
export {};
