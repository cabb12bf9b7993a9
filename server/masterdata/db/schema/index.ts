// Every table of the masterdata database; drizzle-kit reads this barrel.
export * from "./columns.js";
export * from "./history.js";
export * from "./invitations.js";
export * from "./project-members.js";
export * from "./projects.js";
export * from "./tenant-members.js";
export * from "./tenants.js";
export * from "./used-ids.js";
