import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsIn, IsInt, IsOptional, Matches, Max, MaxLength, Min } from 'class-validator';

export const DLQ_REASONS = ['parse_error', 'validation_error', 'processing_error'] as const;
export const DLQ_ID_PATTERN = /^[0-9a-f]{24}$/;

export class DlqListQueryDto {
  @ApiPropertyOptional({ minimum: 1, maximum: 100, default: 50 })
  @Type(() => Number)
  @Max(100)
  @Min(1)
  @IsInt()
  limit = 50;

  @ApiPropertyOptional({ description: 'next_cursor of the previous page' })
  @IsOptional()
  @Matches(/^[A-Za-z0-9_-]+$/, { message: 'cursor must be a next_cursor returned by GET /dlq' })
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
  @ApiProperty({ enum: DLQ_REASONS }) reason!: string;
  @ApiProperty({ example: 'record data is not valid JSON' }) error_message!: string;
  @ApiProperty({ format: 'date-time' }) failed_at!: string;
  @ApiProperty({ example: 'air-quality-stream' }) stream!: string;
  @ApiProperty({ example: 'shardId-000000000001' }) shard_id!: string;
  @ApiProperty({ example: '49650000000000000000000000000000000000000000000000000018' })
  sequence_number!: string;
  @ApiProperty({ example: 'delhi' }) partition_key!: string;
  @ApiProperty({
    example: 1,
    description: 'times the record failed; + 1 each time a redriven record fails again',
  })
  attempts!: number;
  @ApiProperty({ enum: ['pending', 'redriven'] }) status!: string;
  @ApiProperty({
    description: 'the record data as received: UTF-8 text, or base64 when it is not valid UTF-8',
  })
  payload!: string;
  @ApiProperty({ enum: ['utf8', 'base64'] }) payload_encoding!: string;
  @ApiProperty({ description: 'true when the payload was cut to fit a DynamoDB item (400 KB)' })
  payload_truncated!: boolean;
  @ApiProperty({ description: 'size of the record data in bytes' }) payload_bytes!: number;
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
  @ApiProperty() id!: string;
  @ApiProperty({ enum: ['redriven'] }) status!: 'redriven';
}
