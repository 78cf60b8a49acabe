/** Reference nsa ops: filled in by the family work. */
export {};
