import { plainToInstance } from 'class-transformer';
import { validateSync, ValidationError } from 'class-validator';
import { MeasurementInput } from '../domain/measurement';
import { MeasurementDto } from './dto/measurement.dto';

export const MAX_BATCH = 500;

function describe(
  errors: ValidationError[],
  value: Record<string, unknown>,
  prefix: string,
): string[] {
  return errors.map((error) => {
    const path = `${prefix}${error.property}`;
    if (error.constraints && 'whitelistValidation' in error.constraints) {
      return `${path} is not an allowed field`;
    }
    if (value[error.property] === undefined) return `${path} is required`;
    return `${prefix}${Object.values(error.constraints ?? {})[0] ?? `${error.property} is invalid`}`;
  });
}

/** Validates one plain object as a measurement; returns the problems, empty when valid. */
export function validateMeasurement(value: unknown, prefix = ''): string[] {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return [`${prefix === '' ? 'body' : prefix.slice(0, -1)} must be a JSON object`];
  }
  const dto = plainToInstance(MeasurementDto, value, { enableImplicitConversion: false });
  const errors = validateSync(dto, {
    whitelist: true,
    forbidNonWhitelisted: true,
    forbidUnknownValues: true,
    stopAtFirstError: true,
    validationError: { target: false, value: false },
  });
  return describe(errors, value as Record<string, unknown>, prefix);
}

/**
 * All-or-nothing validation of a POST body: one measurement or an array of 1–500.
 * Returns the measurements, or every problem found, with `[i].` before each field of a batch.
 */
export function validateMeasurementBody(
  body: unknown,
): { ok: true; items: MeasurementInput[] } | { ok: false; errors: string[] } {
  if (Array.isArray(body)) {
    if (body.length === 0 || body.length > MAX_BATCH) {
      return {
        ok: false,
        errors: [`a batch must hold 1–${MAX_BATCH} measurements, got ${body.length}`],
      };
    }
    const errors = body.flatMap((item, i) => validateMeasurement(item, `[${i}].`));
    return errors.length > 0
      ? { ok: false, errors }
      : { ok: true, items: body as MeasurementInput[] };
  }
  const errors = validateMeasurement(body);
  return errors.length > 0
    ? { ok: false, errors }
    : { ok: true, items: [body as MeasurementInput] };
}
