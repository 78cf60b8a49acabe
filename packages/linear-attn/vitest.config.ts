import { webattnVitestConfig } from '../../vitest.shared.js';

export default webattnVitestConfig();
