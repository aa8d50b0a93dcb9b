/** Version of the gateway, reported by /health, Health and runner Info. */
export const VERSION = "0.1.0";
