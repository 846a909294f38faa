import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsIn, IsInt, IsOptional, IsString, Max, MaxLength, Min, Matches } from 'class-validator';
import { CURSOR_DESCRIPTION } from '../../common/cursor';
import type { DeadLetterEntry } from '../dead-letter.repository';

export const DLQ_REASONS = ['parse_error', 'validation_error', 'processing_error'] as const;
export const DLQ_ID_PATTERN = /^[0-9a-f]{24}$/;

export class DlqListQueryDto {
  @ApiPropertyOptional({ minimum: 1, maximum: 100, default: 50 })
  @Type(() => Number)
  @Max(100)
  @Min(1)
  @IsInt()
  limit = 50;

  @ApiPropertyOptional({ description: CURSOR_DESCRIPTION, maxLength: 2048 })
  @IsOptional()
  @IsString()
  @MaxLength(2048)
  cursor?: string;

  @ApiPropertyOptional({ enum: DLQ_REASONS })
  @IsOptional()
  @IsIn(DLQ_REASONS)
  reason?: (typeof DLQ_REASONS)[number];
}

export class DlqIdParamsDto {
  @ApiProperty({ example: '3f2a9c0b1d4e5f6a7b8c9d0e', pattern: DLQ_ID_PATTERN.source })
  @Matches(DLQ_ID_PATTERN, { message: 'id must be 24 lowercase hex characters' })
  id!: string;
}

export class DlqEntryDto {
  @ApiProperty({ example: '3f2a9c0b1d4e5f6a7b8c9d0e' }) id!: string;
  @ApiProperty({ enum: DLQ_REASONS }) reason!: (typeof DLQ_REASONS)[number];
  @ApiProperty({ example: 'record data is not valid JSON' }) error_message!: string;
  @ApiProperty({ format: 'date-time', example: '2026-11-26T08:00:01.512Z' }) failed_at!: string;
  @ApiProperty({ example: 'air-quality-stream' }) stream!: string;
  @ApiProperty({ example: 'shardId-000000000001' }) shard_id!: string;
  @ApiProperty({ example: '49650000000000000000000000000000000000000000000000000018' })
  sequence_number!: string;
  @ApiPropertyOptional({
    type: 'integer',
    minimum: 0,
    example: 3,
    description:
      'for a user record of a KPL aggregated record: its index in the aggregate (the KCL’s sub-sequence number)',
  })
  sub_sequence_number?: number;
  @ApiProperty({ example: 'delhi' }) partition_key!: string;
  @ApiProperty({
    type: 'integer',
    minimum: 1,
    example: 1,
    description: 'times the record failed; + 1 each time a redriven record fails again',
  })
  attempts!: number;
  @ApiProperty({ enum: ['pending', 'redriven'] }) status!: 'pending' | 'redriven';
  @ApiProperty({
    description: 'the record data as received: UTF-8 text, or base64 when it is not valid UTF-8',
  })
  payload!: string;
  @ApiProperty({ enum: ['utf8', 'base64'] }) payload_encoding!: 'utf8' | 'base64';
  @ApiProperty({ description: 'true when the payload was cut to fit a DynamoDB item (400 KB)' })
  payload_truncated!: boolean;
  @ApiProperty({ type: 'integer', minimum: 0, description: 'size of the record data in bytes' })
  payload_bytes!: number;
  @ApiPropertyOptional({ format: 'date-time' }) redriven_at?: string;
}

export class DlqListDto {
  @ApiProperty({ type: [DlqEntryDto], description: 'newest first' }) items!: DlqEntryDto[];
  @ApiProperty({
    nullable: true,
    type: String,
    description: 'pass as `cursor` for the next page; null at the end',
  })
  next_cursor!: string | null;
}

export class RedriveResultDto {
  @ApiProperty({ example: '3f2a9c0b1d4e5f6a7b8c9d0e' }) id!: string;
  @ApiProperty({ enum: ['redriven'] }) status!: 'redriven';
}

/**
 * An entry as the API answers it: the fields of SPEC §2 in their order, then the payload's
 * details; never the table's own attributes.
 */
export function toDlqEntryDto(e: DeadLetterEntry): DlqEntryDto {
  return {
    id: e.id,
    reason: e.reason,
    error_message: e.error_message,
    failed_at: e.failed_at,
    stream: e.stream,
    shard_id: e.shard_id,
    sequence_number: e.sequence_number,
    ...(e.sub_sequence_number !== undefined && { sub_sequence_number: e.sub_sequence_number }),
    partition_key: e.partition_key,
    attempts: e.attempts,
    status: e.status,
    payload: e.payload,
    payload_encoding: e.payload_encoding,
    payload_truncated: e.payload_truncated,
    payload_bytes: e.payload_bytes,
    ...(e.redriven_at !== undefined && { redriven_at: e.redriven_at }),
  };
}
