import type { EmbeddedEmulators } from '../../src/infra/embedded/embedded-emulators';

export default async function globalTeardown(): Promise<void> {
  await (globalThis as { __EMULATORS__?: EmbeddedEmulators }).__EMULATORS__?.stop();
}
