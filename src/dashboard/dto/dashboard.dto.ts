import { ApiProperty } from '@nestjs/swagger';
import { Matches } from 'class-validator';

export class DashboardAssetParamsDto {
  @ApiProperty({ example: 'dashboard.js', pattern: '^[A-Za-z0-9._-]{1,64}$' })
  @Matches(/^[A-Za-z0-9._-]{1,64}$/, { message: 'name must be 1–64 of A-Z a-z 0-9 . _ -' })
  name!: string;
}

export class DashboardSessionDto {
  @ApiProperty({
    example: '2026-11-26T09:00:00.000Z',
    format: 'date-time',
    description:
      'when the session cookie expires; the page renews it before then with the key it holds in memory',
  })
  expires_at!: string;
}
