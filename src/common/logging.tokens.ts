/** The process's root pino logger (LOG_LEVEL), shared by nestjs-pino and the access log. */
export const ROOT_LOGGER = Symbol('ROOT_LOGGER');
