/** The ConfigMap with the CA certificates of registries with private TLS, and its keys. */
export const REGISTRY_CA_CONFIGMAP = "snapdeploy-registry-ca";
/** ConfigMap keys allow only [-._a-zA-Z0-9]. */
export const caKey = (host: string) => `${host.replace(/[^-._a-zA-Z0-9]/g, "_")}.crt`;
