import { ApiProperty } from '@nestjs/swagger';

export class IngestionResultDto {
  @ApiProperty({ type: 'integer', minimum: 1, maximum: 500, example: 2 })
  accepted!: number;

  @ApiProperty({
    example: ['9f86d081884c7d65', '2c26b46b68ffc68f'],
    type: [String],
    description: 'in the order of the request',
  })
  message_ids!: string[];
}
