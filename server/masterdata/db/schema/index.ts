// Every table of the masterdata database; drizzle-kit reads this barrel.
export * from "./columns.js";
export * from "./tenants.js";
