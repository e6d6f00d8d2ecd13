// `node --import ./test/helpers/ts-register.mjs x.ts`: runs TypeScript through ts-loader.mjs (.taprc node-arg).
import { register } from 'node:module';

register('./ts-loader.mjs', import.meta.url);
