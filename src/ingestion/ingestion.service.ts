import { Injectable } from '@nestjs/common';
import { AppError, ErrorCode } from '../common/app-error';
import { validateMeasurementBody } from '../common/measurement-validation';
import { Measurement, MeasurementInput, normaliseMeasurement } from '../domain/measurement';
import { KinesisProducerService } from './kinesis-producer.service';

export interface IngestionResult {
  accepted: number;
  message_ids: string[];
}

/** Validates, normalises and puts measurements on the stream; resolves once Kinesis acknowledged all. */
@Injectable()
export class IngestionService {
  constructor(private readonly producer: KinesisProducerService) {}

  async ingestBody(body: unknown): Promise<IngestionResult> {
    const result = validateMeasurementBody(body);
    if (!result.ok)
      throw new AppError(ErrorCode.ValidationFailed, 'validation failed', result.errors);
    return this.ingest(result.items);
  }

  /** For already validated inputs (the simulator). */
  async ingest(inputs: MeasurementInput[]): Promise<IngestionResult> {
    const now = new Date();
    const measurements = inputs.map((input) => normaliseMeasurement(input, now));
    await this.producer.send(measurements.map(toRecord));
    return { accepted: measurements.length, message_ids: measurements.map((m) => m.message_id) };
  }
}

function toRecord(measurement: Measurement): { data: Uint8Array; partitionKey: string } {
  return { data: Buffer.from(JSON.stringify(measurement)), partitionKey: measurement.city_id };
}
