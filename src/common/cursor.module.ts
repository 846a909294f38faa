import { Global, Module } from '@nestjs/common';
import { CursorCodec } from './cursor';

/** The page cursors' signer, for every paged route. */
@Global()
@Module({ providers: [CursorCodec], exports: [CursorCodec] })
export class CursorModule {}
