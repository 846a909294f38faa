import { ApiProperty } from '@nestjs/swagger';

export class IngestionResultDto {
  @ApiProperty({ example: 2 })
  accepted!: number;

  @ApiProperty({ example: ['9f86d081884c7d65', '2c26b46b68ffc68f'], type: [String] })
  message_ids!: string[];
}
