import { plainToInstance } from 'class-transformer';
import { validateSync, ValidationError } from 'class-validator';
import { MeasurementInput } from '../domain/measurement';
import { atReferenceTime, MeasurementDto } from './dto/measurement.dto';
import { isValidMeasurement } from './measurement-schema';

export const MAX_BATCH = 500;

const FIELDS = new Set([
  'city_id',
  'city_name',
  'timestamp',
  'pm25_value',
  'pm10_value',
  'temperature_c',
  'aqi_value',
  'aqi_category',
  'station_id',
]);

/** A hostile key (huge, control characters) is shown cut and escaped. */
const showKey = (key: string) =>
  /^[A-Za-z0-9_]{1,64}$/.test(key) ? key : JSON.stringify(key.slice(0, 64));

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

/**
 * Validates one plain object as a measurement; returns the problems, empty when valid. A valid
 * one passes the compiled schema alone; an invalid one goes through the DTO's rules, which name
 * every problem. Only the known fields, and only scalars, ever reach class-transformer: nested or
 * prototype-named values are rejected before any object is built from them.
 */
export function validateMeasurement(
  value: unknown,
  prefix = '',
  options: { now?: number } = {},
): string[] {
  if (isValidMeasurement(value, options.now ?? Date.now())) return [];
  return describeProblems(value, prefix, options);
}

/** The DTO's rules: slow, and only for a measurement the compiled schema refused. */
export function describeProblems(
  value: unknown,
  prefix = '',
  options: { now?: number } = {},
): string[] {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return [`${prefix === '' ? 'body' : prefix.slice(0, -1)} must be a JSON object`];
  }
  const problems: string[] = [];
  const fields: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(value)) {
    if (!FIELDS.has(key)) problems.push(`${prefix}${showKey(key)} is not an allowed field`);
    else if (field !== null && typeof field === 'object') {
      problems.push(`${prefix}${key} must be a string or a number, not an object or array`);
    } else fields[key] = field;
  }
  const dto = plainToInstance(MeasurementDto, fields, { enableImplicitConversion: false });
  const errors = atReferenceTime(options.now, () =>
    validateSync(dto, {
      whitelist: true,
      forbidNonWhitelisted: true,
      forbidUnknownValues: true,
      stopAtFirstError: true,
      validationError: { target: false, value: false },
    }),
  );
  const invalid = new Set(problems.map((p) => p.slice(prefix.length).split(' ')[0]));
  return problems.concat(
    describe(
      errors.filter((e) => !invalid.has(e.property)),
      value as Record<string, unknown>,
      prefix,
    ),
  );
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
